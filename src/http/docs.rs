//! The OpenAPI document (generated from the handlers' annotations) and its metadata.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// Top-level document; paths are added by each area's router.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Chorus API",
        description = "REST API of Chorus, a realtime social server. Realtime events are carried by \
                       Socket.IO (`/socket.io/`) and plain WebSocket (`/ws`), specified in `protocol/PROTOCOL.md`. \
                       Errors always have the shape `{\"error\":{\"code\",\"message\",\"fields\"?}}`; lists are \
                       `{\"items\":[…],\"next_cursor\":…}` with `?cursor=&limit=`.",
    ),
    modifiers(&SecurityAddon),
    tags(
        (name = "auth", description = "Accounts, sessions and passwords"),
        (name = "users", description = "Profiles, settings, search"),
        (name = "media", description = "Uploads (validated by content, processed in the background), their status, \
                                        deletion and the avatar. Local files are served under `/files/…`."),
        (name = "graph", description = "Follows, follow requests, blocks and mutes"),
        (name = "posts", description = "Posts, saves, profile posts"),
        (name = "reactions", description = "Data-driven reaction types and reactions on posts and comments"),
        (name = "comments", description = "Nested comments"),
        (name = "notifications", description = "Notifications (grouped per target while unread), unread count, \
                                                marking read. Live as `notification.created` on the `notification` topic."),
        (name = "feeds", description = "Home feed, explore, hashtags"),
        (name = "chat", description = "Direct and group conversations, messages, receipts (the socket carries them live)"),
        (name = "ops", description = "Health, readiness, metrics"),
    )
)]
pub struct ApiDoc;

/// Adds the bearer-token scheme referenced by authenticated routes.
struct SecurityAddon;

impl Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}
