// Notifications: grouped ("dave and 2 others reacted…"), live, marked read one by one or all.

import * as api from "./api.js";
import { live } from "./live.js";
import { h, fill, link, avatar, ago, attempt, infinite } from "./ui.js";
import { Scope } from "./feed.js";

function targetPath(n) {
  if (n.post_id) return `/p/${n.post_id}`;
  if (n.conversation_id) return `/chat/${n.conversation_id}`;
  if (n.kind === "follow_request") return "/requests";
  if (n.kind === "report") return "/admin";
  if (n.target.type === "user" && n.actors[0]) return `/u/${n.actors[0].username}`;
  if (n.kind === "export_ready") return "/settings";
  return "/notifications";
}

export async function notifications(root) {
  const scope = new Scope();
  const list = h("ol", { class: "card notifications", "aria-live": "polite" });
  const all = h("button", { type: "button", class: "secondary" }, "Mark all read");
  all.onclick = () => attempt(async () => (await api.post("/notifications/read-all"), list.querySelectorAll(".unread").forEach((el) => el.classList.remove("unread"))));
  root.append(h("div", { class: "row" }, h("h1", { tabindex: "-1" }, "Notifications"), all), list);
  const byId = new Map();
  const item = (n) => {
    const el = h(
      "li",
      { class: "notification" + (n.read ? "" : " unread"), dataset: { notificationId: n.id } },
      h("div", { class: "actors" }, n.actors.map((a) => avatar(a, "xs"))),
      link(targetPath(n), h("span", {}, n.text), n.preview ? h("span", { class: "muted preview" }, " “" + n.preview + "”") : null),
      " ",
      ago(n.updated_at),
    );
    el.querySelector("a").addEventListener("click", () => !n.read && api.post(`/notifications/${n.id}/read`).catch(() => {}));
    return el;
  };
  const put = (n, atTop) => {
    const old = byId.get(n.id);
    const el = item(n);
    byId.set(n.id, el);
    if (old) old.remove();
    if (atTop) list.prepend(el);
    else list.append(el);
  };
  const sentinel = h("div", { class: "sentinel" });
  root.append(sentinel);
  let cursor = null;
  let done = false;
  scope.add(
    infinite(sentinel, async () => {
      if (done) return false;
      const page = await api.get("/notifications" + api.qs({ cursor }));
      for (const n of page.items) if (!byId.has(n.id)) put(n, false);
      cursor = page.next_cursor;
      done = !cursor;
      if (done && !byId.size) list.append(h("li", { class: "muted empty" }, "Nothing yet."));
      return !done;
    }),
  );
  scope.add(
    live.on("notification", (event, data) => {
      if (event === "notification.created") {
        list.querySelector(".empty")?.remove();
        put(data, true);
      }
      if (event === "notifications.read") {
        const els = data.all ? [...byId.values()] : (data.ids || []).map((id) => byId.get(id)).filter(Boolean);
        for (const el of els) el.classList.remove("unread");
      }
    }),
  );
  return scope.end;
}

