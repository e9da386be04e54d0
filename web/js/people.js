// Profiles: follow, requests, followers and following, block, mute; editing one's own
// profile, avatar, privacy, notification switches and sessions.

import * as api from "./api.js";
import * as push from "./push.js";
import { live } from "./live.js";
import { h, fill, link, go, avatar, userLink, ago, toast, attempt, infinite, field, showErrors } from "./ui.js";
import { Scope, userPosts, report, processed } from "./feed.js";

async function lookup(name) {
  return api.get(`/users/${name.startsWith("@") || /^\d+$/.test(name) ? name : "@" + name}`);
}

export async function profile(root, name) {
  const scope = new Scope();
  let u;
  try {
    u = await lookup(name);
  } catch (e) {
    fill(root, h("section", { class: "card" }, h("h1", { tabindex: "-1" }, "This account is not available"), h("p", { class: "muted" }, e.message)));
    return;
  }
  const mine = u.id === api.me().id;
  const rel = u.relationship || {};
  const buttons = h("div", { class: "profile-actions" });
  const drawButtons = () => {
    if (mine) return fill(buttons, link("/settings", "Edit profile"), link("/requests", "Follow requests"), link("/saved", "Saved"));
    const label = rel.following ? "Following" : rel.requested ? "Requested" : rel.followed_by ? "Follow back" : "Follow";
    const follow = h("button", { type: "button", class: rel.following || rel.requested ? "secondary" : "", "aria-pressed": String(!!(rel.following || rel.requested)) }, label);
    follow.onclick = () =>
      attempt(async () => {
        if (rel.following || rel.requested) {
          await api.del(`/users/${u.id}/follow`);
          rel.following = rel.requested = false;
        } else {
          const r = await api.post(`/users/${u.id}/follow`);
          rel.following = r.status === "active";
          rel.requested = r.status === "pending";
        }
        drawButtons();
        if (rel.following) go(`/u/${u.username}`);
      });
    const message = h("button", { type: "button", class: "secondary" }, "Message");
    message.onclick = () => attempt(async () => go(`/chat/${(await api.post("/conversations", { kind: "direct", user_id: u.id })).id}`));
    const mute = h("button", { type: "button", class: "link" }, rel.muting ? "Unmute" : "Mute");
    mute.onclick = () => attempt(async () => (rel.muting ? await api.del(`/users/${u.id}/mute`) : await api.post(`/users/${u.id}/mute`), (rel.muting = !rel.muting), drawButtons()));
    const block = h("button", { type: "button", class: "link danger" }, "Block");
    block.onclick = () =>
      confirm(`Block @${u.username}? They will not see your posts or be able to message you.`) &&
      attempt(async () => {
        await api.post(`/users/${u.id}/block`);
        fill(buttons, h("span", { class: "muted" }, "Blocked. "), h("button", { type: "button", class: "link", onclick: () => attempt(async () => (await api.del(`/users/${u.id}/block`), go(`/u/${u.username}`))) }, "Unblock"));
      });
    fill(buttons, follow, message, mute, block, h("button", { type: "button", class: "link", onclick: () => report("user", u.id) }, "Report"));
  };
  drawButtons();
  root.append(
    h(
      "section",
      { class: "card profile" },
      avatar(u, "lg"),
      h(
        "div",
        {},
        h("h1", { tabindex: "-1" }, u.display_name || u.username, u.is_private ? h("span", { class: "lock", title: "Private account", "aria-label": "private account" }, " 🔒") : null),
        h("p", { class: "muted" }, "@" + u.username),
        h("p", { class: "counts" }, h("span", {}, h("strong", {}, String(u.post_count)), " posts"), " ", link(`/u/${u.username}/followers`, h("strong", {}, String(u.follower_count)), " followers"), " ", link(`/u/${u.username}/following`, h("strong", {}, String(u.following_count)), " following")),
        u.bio ? h("p", { class: "bio" }, u.bio) : null,
        u.website ? h("p", {}, h("a", { href: u.website, rel: "noopener nofollow ugc", target: "_blank" }, u.website)) : null,
        buttons,
      ),
    ),
  );
  const posts = h("section", { class: "profile-posts", "aria-label": "Posts" });
  root.append(posts);
  if (u.is_private && !mine && !rel.following) {
    posts.append(h("p", { class: "card muted private-notice" }, "This account is private. Follow it to see its posts."));
  } else {
    userPosts(posts, u, scope);
  }
  return scope.end;
}

export async function list(root, name, which) {
  const scope = new Scope();
  const u = await lookup(name).catch(() => null);
  if (!u) return fill(root, h("h1", { tabindex: "-1" }, "Not available"));
  root.append(h("h1", { tabindex: "-1" }, `${which === "followers" ? "Followers of" : "Followed by"} @${u.username}`));
  const box = h("ul", { class: "card people" });
  const sentinel = h("div", { class: "sentinel" });
  root.append(box, sentinel);
  let cursor = null;
  let done = false;
  scope.add(
    infinite(sentinel, async () => {
      if (done) return false;
      let page;
      try {
        page = await api.get(`/users/${u.id}/${which}` + api.qs({ cursor }));
      } catch (e) {
        box.append(h("li", { class: "muted" }, e.message));
        return false;
      }
      for (const e of page.items) box.append(h("li", { class: "person" }, avatar(e.user), userLink(e.user)));
      cursor = page.next_cursor;
      done = !cursor;
      if (done && !box.children.length) box.append(h("li", { class: "muted" }, "Nobody yet."));
      return !done;
    }),
  );
  return scope.end;
}

export async function requests(root) {
  const scope = new Scope();
  root.append(h("h1", { tabindex: "-1" }, "Follow requests"));
  const box = h("ul", { class: "card people" });
  root.append(box);
  const add = (e) => {
    if (box.querySelector(`[data-user-id="${e.user.id}"]`)) return;
    box.querySelector(".empty")?.remove();
    const li = h("li", { class: "person", dataset: { userId: e.user.id } }, avatar(e.user), userLink(e.user));
    li.append(
      h("button", { type: "button", onclick: () => attempt(async () => (await api.post(`/users/me/follow-requests/${e.user.id}/approve`), li.remove())) }, "Approve"),
      h("button", { type: "button", class: "secondary", onclick: () => attempt(async () => (await api.del(`/users/me/follow-requests/${e.user.id}`), li.remove())) }, "Decline"),
    );
    box.append(li);
  };
  let cursor = null;
  do {
    const page = await api.get("/users/me/follow-requests" + api.qs({ cursor }));
    page.items.forEach(add);
    cursor = page.next_cursor;
  } while (cursor);
  if (!box.children.length) box.append(h("li", { class: "muted empty" }, "No requests."));
  scope.add(live.on("follower", (event, data) => event === "follow.requested" && add(data)));
  return scope.end;
}

const KIND_LABELS = {
  follow: "New followers",
  follow_request: "Follow requests",
  follow_approved: "Approved requests",
  reaction: "Reactions",
  comment: "Comments",
  reply: "Replies",
  mention: "Mentions",
  message: "Messages",
};

export async function settings(root) {
  const me = await api.get("/auth/me");
  api.setMe(me);
  root.append(h("h1", { tabindex: "-1" }, "Settings"));

  // Profile
  const pf = h(
    "form",
    { class: "card" },
    h("h2", {}, "Profile"),
    field("Display name", h("input", { name: "display_name", value: me.display_name, maxlength: 50 })),
    field("Bio", h("textarea", { name: "bio", rows: 3, maxlength: 300 }, me.bio)),
    field("Website", h("input", { name: "website", type: "url", value: me.website || "" })),
    h("label", { class: "check" }, h("input", { type: "checkbox", name: "is_private", checked: me.is_private }), " Private account: only approved followers see my posts"),
    h("button", { type: "submit" }, "Save profile"),
  );
  pf.onsubmit = async (e) => {
    e.preventDefault();
    const v = new FormData(pf);
    try {
      const u = await api.patch("/users/me", { display_name: v.get("display_name"), bio: v.get("bio"), website: v.get("website") || null, is_private: pf.is_private.checked });
      api.setMe(u);
      toast("Profile saved.");
    } catch (err) {
      showErrors(pf, err);
    }
  };

  // Avatar
  const pic = h("input", { type: "file", accept: "image/*", name: "avatar" });
  const current = h("div", { class: "avatar-current" }, avatar(me, "lg"));
  const state = h("p", { role: "status", class: "muted" });
  pic.onchange = () =>
    attempt(async () => {
      const file = pic.files[0];
      if (!file) return;
      state.textContent = "Uploading…";
      const up = await api.upload(file, (p) => (state.textContent = `Uploading… ${Math.round(p * 100)}%`));
      state.textContent = "Processing…";
      const ready = await processed(up.id);
      if (!ready) return (state.textContent = "That image could not be processed.");
      const u = await api.put("/users/me/avatar", { media_id: up.id });
      api.setMe(u);
      fill(current, avatar(u, "lg"));
      state.textContent = "Avatar updated.";
    });
  const av = h("section", { class: "card" }, h("h2", {}, "Avatar"), current, field("New avatar", pic), state);

  // Notifications and messages
  const rows = Object.entries(me.settings.notifications).map(([kind, p]) =>
    h("tr", {}, h("th", { scope: "row" }, KIND_LABELS[kind] || kind.replace("_", " ")), ...["in_app", "email", "push"].map((ch) => h("td", {}, h("input", { type: "checkbox", name: `${kind}.${ch}`, checked: p[ch], "aria-label": `${KIND_LABELS[kind] || kind} ${CHANNEL_LABELS[ch]}` })))),
  );
  const previews = h("input", { type: "checkbox", name: "push_previews", checked: me.settings.push_previews });
  const who = h("select", { name: "who_can_message" }, ["everyone", "following", "nobody"].map((w) => h("option", { value: w, selected: me.settings.who_can_message === w }, { everyone: "Everyone", following: "People I follow", nobody: "Nobody" }[w])));
  const nf = h(
    "form",
    { class: "card" },
    h("h2", {}, "Notifications"),
    h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, ""), h("th", { scope: "col" }, "In app"), h("th", { scope: "col" }, "E-mail"), h("th", { scope: "col" }, "Push"))), h("tbody", {}, rows)),
    h("label", { class: "check" }, previews, " Show message text in push notifications"),
    field("Who can message me without a request", who),
    h("button", { type: "submit" }, "Save"),
  );
  nf.onsubmit = async (e) => {
    e.preventDefault();
    const notifications = {};
    for (const box of nf.querySelectorAll("tbody input[type=checkbox]")) {
      const [kind, ch] = box.name.split(".");
      (notifications[kind] ||= {})[ch] = box.checked;
    }
    try {
      await api.put("/users/me/settings", { notifications, who_can_message: who.value, push_previews: previews.checked });
      toast("Settings saved.");
    } catch (err) {
      showErrors(nf, err);
    }
  };

  // Sessions
  const sessions = h("ul", { class: "sessions" });
  const sf = h("section", { class: "card" }, h("h2", {}, "Where you're signed in"), sessions);
  api.get("/auth/sessions").then((page) =>
    fill(
      sessions,
      (page.items || page).map((s) =>
        h("li", {}, h("span", {}, s.device || "unknown device", " · ", s.ip, " · last used ", ago(s.last_used_at)), h("button", { type: "button", class: "link danger", onclick: (e) => attempt(async () => (await api.del(`/auth/sessions/${s.id}`), e.target.closest("li").remove())) }, "Sign out")),
      ),
    ),
  );
  root.append(pf, av, nf, pushCard(), sf);
}

const CHANNEL_LABELS = { in_app: "in the app", email: "by e-mail", push: "by push" };

/** Push notifications on this browser: on or off, and why not where it cannot. */
function pushCard() {
  const state = h("p", { role: "status" });
  const button = h("button", { type: "button" });
  const card = h("section", { class: "card", id: "push" }, h("h2", {}, "Push notifications on this device"), state, button);
  const show = (on) => {
    state.textContent = on ? "On: this browser shows notifications while Chorus is closed." : "Off on this browser.";
    button.textContent = on ? "Turn off" : "Turn on";
    button.dataset.on = on ? "1" : "";
  };
  if (!push.supported()) {
    state.textContent = "This browser cannot receive push notifications.";
    button.hidden = true;
    return card;
  }
  api.get("/push/subscriptions").then(
    (devices) => show(devices.some((d) => d.id === push.deviceId())),
    () => show(false),
  );
  button.onclick = async () => {
    button.disabled = true;
    try {
      if (button.dataset.on) {
        await push.disable();
        show(false);
      } else {
        await push.enable();
        show(true);
      }
    } catch (e) {
      state.textContent = e.message || String(e);
    } finally {
      button.disabled = false;
    }
  };
  return card;
}
