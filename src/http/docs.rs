//! The OpenAPI document (generated from the handlers' annotations) and its metadata.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, ResponseBuilder};
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
        (name = "safety", description = "Reports, the moderators' queue and actions (remove, suspend), roles and \
                                         the append-only audit log"),
        (name = "push", description = "Push notifications: the Web Push (VAPID) key browsers subscribe with, and the \
                                       caller's registered devices (browser subscriptions, FCM tokens). A device gets a push for \
                                       each notification made while its owner has no socket open (per-kind `push` \
                                       switch in the settings)"),
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

/// Adds to every operation of the finished document (the areas' routers add the paths, so
/// this runs after them, not as a derive modifier) the statuses that come from the edge
/// rather than the handler, so that each operation documents everything it can answer: a
/// JSON body that is malformed (`400`), too large (`413`) or of another content type
/// (`415`); a malformed query string (`400`); a path parameter that is not an id (`404`); a
/// bad bearer token where one is accepted (`401`); and a dependency that is down (`503`).
/// All of them carry the error body.
pub fn add_common_responses(openapi: &mut utoipa::openapi::OpenApi) {
    for (path, item) in openapi.paths.paths.iter_mut() {
        // Liveness and the metrics text touch no dependency.
        let standalone = matches!(path.as_str(), "/health" | "/metrics");
        // Writes limited per account (`rate_limit.writes`).
        let limited = match path.as_str() {
            "/api/v1/posts"
            | "/api/v1/posts/{id}/comments"
            | "/api/v1/conversations"
            | "/api/v1/media"
            | "/api/v1/users/{id}/follow"
            | "/api/v1/conversations/{id}/messages" => "post",
            "/api/v1/posts/{id}/reaction" | "/api/v1/comments/{id}/reaction" | "/api/v1/messages/{id}/reaction" => {
                "put"
            }
            _ => "",
        };
        let ops = [
            ("get", &mut item.get),
            ("put", &mut item.put),
            ("post", &mut item.post),
            ("delete", &mut item.delete),
            ("patch", &mut item.patch),
            ("head", &mut item.head),
            ("options", &mut item.options),
        ];
        for (method, op) in ops {
            if let Some(op) = op {
                add_common(op, !standalone, method == limited);
            }
        }
    }
}

fn add_common(op: &mut Operation, uses_dependencies: bool, write_limited: bool) {
    let json_body = op.request_body.as_ref().is_some_and(|b| b.content.contains_key("application/json"));
    let params = op.parameters.as_deref().unwrap_or_default();
    let query = params.iter().any(|p| matches!(p.parameter_in, ParameterIn::Query));
    let path = params.iter().any(|p| matches!(p.parameter_in, ParameterIn::Path));
    let bearer = op.security.as_ref().is_some_and(|s| !s.is_empty());
    let mut add = |status: &str, why: &str| {
        op.responses.responses.entry(status.to_string()).or_insert_with(|| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(why)
                    .content("application/json", Content::new(Some(Ref::from_schema_name("ErrorBody"))))
                    .build(),
            )
        });
    };
    if json_body {
        add("400", "Malformed body");
        add("413", "Body too large");
        add("415", "Not `Content-Type: application/json`");
    }
    if query {
        add("400", "Malformed query string");
    }
    if path {
        add("404", "No such item (or a malformed id)");
    }
    if bearer {
        add("401", "Missing, bad, expired or revoked token");
    }
    if write_limited {
        add("429", "The account's write limit of this kind is reached; see Retry-After");
    }
    if uses_dependencies {
        add("503", "A dependency (database, Redis) is unavailable; retry later");
    }
}
