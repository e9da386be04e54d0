#!/usr/bin/env python3
"""Writes protocol/schemas/*.json. The schemas are the contract; this script only saves
typing and keeps their boilerplate ($schema, $id) uniform. Re-run after editing it."""
import json, os

BASE = "https://chorus.local/protocol/schemas/"
HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schemas")

def ref(name):
    return {"$ref": "../defs.json#/$defs/" + name}

def write(path, title, schema):
    doc = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": BASE + path, "title": title}
    doc.update(schema)
    with open(os.path.join(HERE, path), "w") as f:
        json.dump(doc, f, indent=2, ensure_ascii=False)
        f.write("\n")

def obj(props, required, extra=False):
    return {"type": "object", "properties": props, "required": required, "additionalProperties": extra}

def lref(name):
    return {"$ref": "#/$defs/" + name}

# ---- shared definitions -------------------------------------------------------------------
defs = {
    "id": {"type": "string", "pattern": "^[0-9]+$", "description": "opaque id (decimal string)"},
    "seq": {"type": "string", "pattern": "^[0-9]+$", "description": "position in a durable topic"},
    "timestamp": {"type": "string", "format": "date-time"},
    "frame_id": {"type": "integer", "minimum": 0},
    "topic": {"type": "string", "pattern": "^(feed|follower|notification|image|(chat|post|user|presence):[0-9]+)$"},
    "event_name": {"enum": [
        "post.created", "post.updated", "post.deleted", "comment.created", "comment.updated", "comment.deleted",
        "reaction.changed", "follower.added", "follower.removed", "follow.requested", "follow.approved",
        "notification.created", "notifications.read", "message.created", "message.updated", "message.deleted",
        "message.reaction", "typing", "read", "member.added", "member.removed", "media.processing", "media.ready",
        "media.failed", "presence.changed", "reports.open"]},
    "error_detail": obj({
        "code": {"type": "string", "pattern": "^[a-z_]+$"},
        "message": {"type": "string"},
        "fields": {"type": "object", "additionalProperties": {"type": "string"}},
    }, ["code", "message"]),
    "user_summary": {"type": "object", "required": ["id", "username", "display_name", "avatar_media_id", "avatar_url", "is_private"],
                     "properties": {
        "id": lref("id"), "username": {"type": "string"}, "display_name": {"type": "string"},
        "avatar_media_id": {"anyOf": [lref("id"), {"type": "null"}]},
        "avatar_url": {"type": ["string", "null"], "description": "the avatar's thumbnail, relative to the server (a redirect)"},
        "is_private": {"type": "boolean"}}},
    "reaction_counts": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 1},
                        "description": "non-zero counts per reaction type"},
    "media": {"type": "object", "required": ["id", "kind", "status", "alt_text", "variants"], "properties": {
        "alt_text": {"type": "string", "description": "the uploader's description, for the image's alt"},
        "id": lref("id"), "kind": {"enum": ["image", "video"]}, "status": {"enum": ["processing", "ready", "failed"]},
        "width": {"type": ["integer", "null"]}, "height": {"type": ["integer", "null"]},
        "placeholder": {"type": ["string", "null"]},
        "variants": {"type": "array", "items": {"type": "object", "required": ["name", "url", "width", "height"],
            "properties": {"name": {"type": "string"}, "url": {"type": "string"},
                           "content_type": {"type": "string"}, "width": {"type": "integer"}, "height": {"type": "integer"}}}}}},
    "post": {"type": "object",
             "description": "as GET /posts/{id} answers, from nobody's point of view: my_reaction null, saved false",
             "required": ["id", "author", "caption", "hashtags", "mentions", "media", "reaction_counts", "my_reaction",
                          "comment_count", "saved", "created_at", "updated_at"],
             "properties": {"id": lref("id"), "author": lref("user_summary"), "caption": {"type": "string"},
                            "hashtags": {"type": "array", "items": {"type": "string"}},
                            "mentions": {"type": "array", "items": lref("user_summary")},
                            "media": {"type": "array", "items": lref("media")}, "reaction_counts": lref("reaction_counts"),
                            "my_reaction": {"type": ["string", "null"]}, "comment_count": {"type": "integer", "minimum": 0},
                            "saved": {"type": "boolean"}, "created_at": lref("timestamp"), "updated_at": lref("timestamp")}},
    "comment": {"type": "object",
                "description": "as GET /posts/{id}/comments answers; a tombstone has deleted true, body and author null",
                "required": ["id", "post_id", "parent_id", "author", "body", "deleted", "mentions", "reaction_counts",
                             "my_reaction", "reply_count", "created_at", "updated_at"],
                "properties": {"id": lref("id"), "post_id": lref("id"), "parent_id": {"anyOf": [lref("id"), {"type": "null"}]},
                               "author": {"anyOf": [lref("user_summary"), {"type": "null"}]},
                               "body": {"type": ["string", "null"]}, "deleted": {"type": "boolean"},
                               "mentions": {"type": "array", "items": lref("user_summary")},
                               "reaction_counts": lref("reaction_counts"), "my_reaction": {"type": ["string", "null"]},
                               "reply_count": {"type": "integer", "minimum": 0},
                               "created_at": lref("timestamp"), "updated_at": lref("timestamp")}},
    "message": {"type": "object",
                "description": "as GET /conversations/{id}/messages answers; a tombstone has deleted true, body null, no media",
                "required": ["id", "conversation_id", "sender", "body", "media", "reply_to", "client_msg_id", "deleted",
                             "edited", "reaction_counts", "created_at", "updated_at"],
                "properties": {"id": lref("id"), "conversation_id": lref("id"), "sender": lref("user_summary"),
                               "body": {"type": ["string", "null"], "maxLength": 4000},
                               "media": {"type": "array", "items": lref("media")},
                               "reply_to": {"anyOf": [lref("id"), {"type": "null"}]},
                               "client_msg_id": {"type": ["string", "null"]}, "deleted": {"type": "boolean"},
                               "edited": {"type": "boolean"}, "reaction_counts": lref("reaction_counts"),
                               "created_at": lref("timestamp"), "updated_at": lref("timestamp")}},
    "limits": obj({k: {"type": "integer", "minimum": 0} for k in
                   ["max_frame_bytes", "rate_per_sec", "burst", "queue_frames", "max_subscriptions",
                    "max_conversation_subscriptions", "max_replay"]},
                  ["max_frame_bytes", "rate_per_sec", "burst", "queue_frames", "max_subscriptions", "max_replay"]),
    "subscribe_result": {"type": "object", "required": ["result"], "properties": {
        "topic": lref("topic"), "result": {"enum": ["subscribed", "resumed", "resync_required", "error"]},
        "seq": lref("seq"), "presence": {"type": "object"}, "error": lref("error_detail")}},
}
with open(os.path.join(HERE, "defs.json"), "w") as f:
    json.dump({"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": BASE + "defs.json",
               "title": "Shared definitions", "$defs": defs}, f, indent=2, ensure_ascii=False)
    f.write("\n")

# ---- client frames ------------------------------------------------------------------------
def client(op, props, required):
    p = {"op": {"const": op}, "id": ref("frame_id")}
    p.update(props)
    write(f"client/{op}.json", f"client frame `{op}`", obj(p, ["op"] + required))

positions = {"type": "object", "additionalProperties": ref("seq"), "maxProperties": 256}
client("auth", {"token": {"type": "string"}, "positions": positions}, ["token"])
client("subscribe", {"topic": ref("topic"), "from": ref("seq")}, ["topic"])
client("unsubscribe", {"topic": ref("topic")}, ["topic"])
client("resume", {"positions": positions}, ["positions"])
client("ping", {}, [])
client("chat.send", {"data": obj({"conversation_id": ref("id"), "body": {"type": "string", "maxLength": 4000},
                                  "media_ids": {"type": "array", "items": ref("id"), "maxItems": 10},
                                  "reply_to": ref("id"),
                                  "client_msg_id": {"type": "string", "minLength": 1, "maxLength": 100,
                                                    "description": "makes the send idempotent: always set it, retry with the same"}},
                                 ["conversation_id"])}, ["data"])
client("chat.typing", {"data": obj({"conversation_id": ref("id")}, ["conversation_id"])}, ["data"])
client("chat.read", {"data": obj({"conversation_id": ref("id"), "message_id": ref("id"),
                                  "receipt": {"enum": ["read", "delivered"]}}, ["conversation_id", "message_id"])}, ["data"])

# ---- server frames ------------------------------------------------------------------------
write("server/hello.json", "server frame `hello`", obj({
    "op": {"const": "hello"},
    "data": obj({"user_id": ref("id"), "session_id": {"type": "string"},
                 "node": {"type": "integer", "minimum": 0, "maximum": 1023,
                          "description": "the instance serving this connection (for logs and tests)"},
                 "heartbeat_ms": {"type": "integer", "minimum": 1},
                 "token_expires_at": {"type": "integer"}, "limits": ref("limits"),
                 "subscriptions": {"type": "object", "additionalProperties": ref("subscribe_result")}},
                ["user_id", "session_id", "node", "heartbeat_ms", "token_expires_at", "limits"])}, ["op", "data"]))
write("server/ok.json", "server frame `ok` (reply to a client frame with an id)",
      obj({"op": {"const": "ok"}, "id": ref("frame_id"), "data": {}}, ["op", "data"]))
write("server/error.json", "server frame `error`",
      obj({"op": {"const": "error"}, "id": ref("frame_id"), "error": ref("error_detail")}, ["op", "error"]))
write("server/event.json", "server frame `event` (data is validated by schemas/events/<event>.json)",
      obj({"op": {"const": "event"}, "topic": ref("topic"), "event": ref("event_name"), "seq": ref("seq"), "data": {}},
          ["op", "topic", "event", "data"]))
write("server/unsubscribed.json", "server frame `unsubscribed` (the server ended a subscription the user may no longer see)",
      obj({"op": {"const": "unsubscribed"}, "topic": ref("topic"), "error": ref("error_detail")}, ["op", "topic", "error"]))
write("server/resync_required.json", "server frame `resync_required`",
      obj({"op": {"const": "resync_required"}, "topic": ref("topic"), "seq": ref("seq")}, ["op", "topic", "seq"]))
write("server/pong.json", "server frame `pong`", obj({"op": {"const": "pong"}, "id": ref("frame_id")}, ["op"]))
write("server/reconnect.json", "server frame `reconnect` (precedes a 4000–4499 close)",
      obj({"op": {"const": "reconnect"}, "reason": {"type": "string"}, "code": {"type": "integer", "minimum": 4000, "maximum": 4499}},
          ["op", "reason", "code"]))
write("server/sio_event.json", "Socket.IO event argument",
      obj({"topic": ref("topic"), "seq": ref("seq"), "data": {}}, ["topic", "data"]))
write("server/sio_ack.json", "Socket.IO acknowledgement",
      {"oneOf": [obj({"ok": {"const": True}, "data": {}}, ["ok", "data"]),
                 obj({"ok": {"const": False}, "error": ref("error_detail")}, ["ok", "error"])]})

# ---- event data -----------------------------------------------------------------------------
def event(name, schema):
    write(f"events/{name}.json", f"data of event `{name}`", schema)

user_wrap = {"type": "object", "required": ["user"], "properties": {"user": ref("user_summary")}}
event("post.created", ref("post"))
event("post.updated", ref("post"))
event("post.deleted", {"type": "object", "required": ["id"], "properties": {"id": ref("id")}})
event("comment.created", ref("comment"))
event("comment.updated", ref("comment"))
event("comment.deleted", {"type": "object", "required": ["id", "post_id", "tombstone"], "properties": {
    "id": ref("id"), "post_id": ref("id"),
    "tombstone": {"type": "boolean", "description": "true: replies keep it in the thread as a tombstone; false: gone"}}})
event("reaction.changed", {"type": "object", "required": ["target_kind", "target_id", "post_id", "reaction_counts"],
    "properties": {"target_kind": {"enum": ["post", "comment"]}, "target_id": ref("id"), "post_id": ref("id"),
                   "reaction_counts": ref("reaction_counts")}})
for e in ["follower.added", "follower.removed", "follow.requested", "follow.approved"]:
    event(e, user_wrap)
def nullable(s):
    return {"anyOf": [s, {"type": "null"}]}
event("notification.created", obj({
    "id": ref("id"),
    "kind": {"enum": ["follow", "follow_request", "follow_approved", "reaction", "comment", "reply", "mention",
                      "message", "report", "report_resolved", "export_ready"]},
    "read": {"type": "boolean"},
    "created_at": ref("timestamp"),
    "updated_at": ref("timestamp"),
    "actors": {"type": "array", "maxItems": 3, "items": ref("user_summary"), "description": "latest first"},
    "actor_count": {"type": "integer", "minimum": 1, "description": "all actors grouped in this notification"},
    "target": obj({"type": {"enum": ["post", "comment", "user", "conversation", "report", "export"]}, "id": ref("id")}, ["type", "id"]),
    "post_id": nullable(ref("id")),
    "comment_id": nullable(ref("id")),
    "conversation_id": nullable(ref("id")),
    "preview": nullable({"type": "string", "maxLength": 140}),
    "text": {"type": "string", "description": "ready-made sentence, e.g. \"alice and 2 others reacted to your post\""},
}, ["id", "kind", "read", "created_at", "updated_at", "actors", "actor_count", "target", "post_id", "comment_id",
    "conversation_id", "preview", "text"]))
event("notifications.read", {"oneOf": [
    obj({"ids": {"type": "array", "minItems": 1, "items": ref("id")}}, ["ids"]),
    obj({"all": {"const": True}}, ["all"])]})
event("message.created", ref("message"))
event("message.updated", ref("message"))
event("message.deleted", {"type": "object", "required": ["id", "conversation_id"], "properties": {
    "id": ref("id"), "conversation_id": ref("id")}})
event("message.reaction", {"type": "object", "required": ["message_id", "conversation_id", "reaction_counts"],
    "properties": {"message_id": ref("id"), "conversation_id": ref("id"), "reaction_counts": ref("reaction_counts")}})
event("typing", {"type": "object", "required": ["conversation_id", "user_id", "expires_in_ms"], "properties": {
    "conversation_id": ref("id"), "user_id": ref("id"),
    "expires_in_ms": {"type": "integer", "minimum": 1, "description": "drop the indicator after this long without another"}}})
event("read", {"type": "object", "required": ["conversation_id", "user_id", "message_id", "receipt"], "properties": {
    "conversation_id": ref("id"), "user_id": ref("id"), "message_id": ref("id"),
    "receipt": {"enum": ["read", "delivered"], "description": "read implies delivered"}}})
for e in ["member.added", "member.removed"]:
    event(e, {"type": "object", "required": ["conversation_id", "user"], "properties": {
        "conversation_id": ref("id"), "user": ref("user_summary")}})
event("media.processing", {"type": "object", "required": ["id", "kind", "status"], "properties": {
    "id": ref("id"), "kind": {"enum": ["image", "video"]}, "status": {"const": "processing"}}})
event("media.ready", ref("media"))
event("media.failed", {"type": "object", "required": ["id", "kind", "status", "reason"], "properties": {
    "id": ref("id"), "kind": {"enum": ["image", "video"]}, "status": {"const": "failed"}, "reason": {"type": "string"}}})
event("presence.changed", {"type": "object", "required": ["user_id", "online"], "additionalProperties": False, "properties": {
    "user_id": ref("id"), "online": {"type": "boolean"}, "last_seen": {"anyOf": [ref("timestamp"), {"type": "null"}]}}})
event("reports.open", obj({"count": {"type": "integer", "minimum": 0, "description": "open reports now"}}, ["count"]))
