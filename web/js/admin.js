// Moderation: the reports queue with what the reporter saw, and the actions on it.

import * as api from "./api.js";
import { live } from "./live.js";
import { h, fill, avatar, userLink, ago, attempt, toast } from "./ui.js";
import { Scope } from "./feed.js";

function snapshot(r) {
  const s = r.snapshot || {};
  const text = s.caption ?? s.body ?? s.bio ?? "";
  return h("blockquote", { class: "snapshot" }, text || h("em", { class: "muted" }, "(no text)"));
}

export async function reports(root) {
  const scope = new Scope();
  const me = api.me();
  if (me.role !== "moderator" && me.role !== "admin") {
    root.append(h("h1", { tabindex: "-1" }, "Reports"), h("p", { class: "muted" }, "Only moderators see the reports queue."));
    return;
  }
  const status = h("select", { "aria-label": "Show" }, h("option", { value: "open" }, "Open"), h("option", { value: "resolved" }, "Resolved"));
  const list = h("ol", { class: "reports" });
  root.append(h("div", { class: "row" }, h("h1", { tabindex: "-1" }, "Reports"), status), list);
  const act = (r, action) =>
    attempt(async () => {
      await api.post(`/admin/reports/${r.id}/${action}`);
      toast(`Report ${action === "dismiss" ? "dismissed" : action === "remove" ? "resolved: content removed" : "resolved: account suspended"}.`);
      draw();
    });
  const draw = async () => {
    const page = await api.get("/admin/reports" + api.qs({ status: status.value, limit: 50 }));
    fill(
      list,
      page.items.length
        ? page.items.map((r) =>
            h(
              "li",
              { class: "card report", dataset: { reportId: r.id } },
              h("header", {}, h("strong", {}, r.reason.replace("_", " ")), " · ", r.target.type, " ", r.target.id, " · ", ago(r.created_at)),
              h("p", {}, "Reported by ", r.reporter ? userLink(r.reporter) : "a deleted account", r.target_user ? [" · about ", avatar(r.target_user, "xs"), " ", userLink(r.target_user)] : null),
              r.note ? h("p", { class: "muted" }, "“" + r.note + "”") : null,
              snapshot(r),
              r.status === "open"
                ? h(
                    "div",
                    { class: "row" },
                    h("button", { type: "button", class: "secondary", onclick: () => act(r, "dismiss") }, "Dismiss"),
                    r.target.type !== "user" ? h("button", { type: "button", class: "danger", onclick: () => confirm("Remove this content?") && act(r, "remove") }, "Remove content") : null,
                    h("button", { type: "button", class: "danger", onclick: () => confirm("Suspend this account?") && act(r, "suspend") }, "Suspend account"),
                  )
                : h("p", { class: "muted" }, "Resolved: ", r.resolution || ""),
            ),
          )
        : h("li", { class: "muted" }, "No reports."),
    );
  };
  status.onchange = () => attempt(draw);
  await draw();
  scope.add(live.on("notification", (event) => event === "reports.open" && status.value === "open" && draw().catch(() => {})));
  return scope.end;
}
