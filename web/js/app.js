// The shell: routes, the navigation bar with its live badges and connection indicator, and
// the signed-out screens (login, register, password reset, e-mail verification).

import * as api from "./api.js";
import { live } from "./live.js";
import { h, fill, link, go, setNavigator, toast, field, showErrors, badge, avatar } from "./ui.js";
import * as feed from "./feed.js";
import * as people from "./people.js";
import * as chat from "./chat.js";
import * as inbox from "./inbox.js";
import * as admin from "./admin.js";
import * as push from "./push.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const status = document.getElementById("status");

const routes = [
  [/^\/$/, (p) => feed.home(p)],
  [/^\/explore$/, (p) => feed.explore(p)],
  [/^\/tags\/([^/]+)$/, (p, tag) => feed.tag(p, decodeURIComponent(tag))],
  [/^\/new$/, (p) => feed.composer(p)],
  [/^\/p\/(\d+)$/, (p, id) => feed.postPage(p, id)],
  [/^\/saved$/, (p) => feed.saved(p)],
  [/^\/u\/([^/]+)$/, (p, name) => people.profile(p, decodeURIComponent(name))],
  [/^\/u\/([^/]+)\/(followers|following)$/, (p, name, which) => people.list(p, decodeURIComponent(name), which)],
  [/^\/requests$/, (p) => people.requests(p)],
  [/^\/settings$/, (p) => people.settings(p)],
  [/^\/notifications$/, (p) => inbox.notifications(p)],
  [/^\/chat$/, (p) => chat.list(p)],
  [/^\/chat\/(\d+)$/, (p, id) => chat.conversation(p, id)],
  [/^\/admin$/, (p) => admin.reports(p)],
];
const signedOut = [
  [/^\/login$/, login],
  [/^\/register$/, register],
  [/^\/forgot$/, forgot],
  [/^\/reset-password$/, reset],
  [/^\/verify-email$/, verify],
];

let cleanup = null;

async function render() {
  if (cleanup) cleanup();
  cleanup = null;
  const path = location.pathname;
  const session = api.current();
  for (const [re, view] of signedOut) {
    const m = path.match(re);
    if (m) return show(await view(params()));
  }
  if (!session) return go(path === "/" ? "/login" : "/login?next=" + encodeURIComponent(path + location.search));
  for (const [re, view] of routes) {
    const m = path.match(re);
    if (m) {
      const page = h("div", { class: "page" });
      fill(main, page);
      markCurrent(path);
      cleanup = (await view(page, ...m.slice(1))) || null;
      settle(page);
      return;
    }
  }
  show(h("section", { class: "card" }, h("h1", {}, "Not found"), link("/", "Home")));
}

function show(el) {
  fill(main, el);
  markCurrent(location.pathname);
  settle(main);
}

/** After a page renders: its title, and focus on its heading unless the page took focus
 * itself (the chat input), so keyboard and screen-reader users start at the new content. */
function settle(page) {
  const heading = page.querySelector("h1");
  document.title = heading && heading.textContent.trim() ? `${heading.textContent.trim()} · Chorus` : "Chorus";
  if (heading && !main.contains(document.activeElement)) heading.focus({ preventScroll: true });
}

/** `aria-current="page"` on the navigation link of the page shown. */
function markCurrent(path) {
  for (const a of nav.querySelectorAll("a")) {
    if (a.getAttribute("href") === path) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

const params = () => new URLSearchParams(location.search);

setNavigator((path) => {
  if (path !== location.pathname + location.search) history.pushState(null, "", path);
  render();
  scrollTo(0, 0);
});
addEventListener("popstate", render);

// ---------------------------------------------------------------------------------------
// Navigation bar

const chatBadge = h("span", { class: "badge", hidden: true, "aria-label": "unread conversations" });
const noteBadge = h("span", { class: "badge", hidden: true, "aria-label": "unread notifications" });
const reportBadge = h("span", { class: "badge", hidden: true, "aria-label": "open reports" });

function drawNav() {
  const me = api.me();
  if (!me) return fill(nav, link("/login", "Log in"), link("/register", "Sign up"));
  const staff = me.role === "moderator" || me.role === "admin";
  fill(
    nav,
    link("/", "Home"),
    link("/explore", "Explore"),
    link("/new", "New post"),
    link("/chat", "Chat", chatBadge),
    link("/notifications", "Notifications", noteBadge),
    staff ? link("/admin", "Reports", reportBadge) : null,
    link(`/u/${me.username}`, avatar(me, "xs"), h("span", { class: "sr-only" }, "Profile")),
    h("button", { class: "link", type: "button", onclick: logout }, "Log out"),
  );
}

async function refreshBadges() {
  const me = api.me();
  if (!me) return;
  const [n, c] = await Promise.all([api.get("/notifications/unread-count"), api.get("/conversations/unread-count")]).catch(() => []);
  if (n) badge(noteBadge, n.count);
  if (c) badge(chatBadge, c.conversations.filter((x) => x.unread_count > 0).length);
  if (me.role === "moderator" || me.role === "admin") {
    const r = await api.get("/admin/reports/count").catch(() => null);
    if (r) badge(reportBadge, r.open);
  }
}

live.on("notification", (event, data) => {
  if (event === "notification.created" || event === "notifications.read" || event === "resync") refreshBadges();
  if (event === "reports.open") badge(reportBadge, data.count);
});
live.on("*", (event, _data, frame) => {
  if (frame.topic && frame.topic.startsWith("chat:") && ["message.created", "read", "member.added", "resync"].includes(event)) {
    clearTimeout(refreshBadges.t);
    refreshBadges.t = setTimeout(refreshBadges, 200);
  }
});

const labels = { live: "Live", connecting: "Connecting…", reconnecting: "Reconnecting…", offline: "Offline", "signed-out": "Signed out", suspended: "Suspended" };
live.onStatus((s) => {
  status.dataset.state = s;
  status.textContent = labels[s] || s;
  if (s === "signed-out") endSession("Your session ended. Log in again.");
  if (s === "suspended") endSession("This account has been suspended.");
  if (s === "live") refreshBadges();
});

async function logout() {
  const s = api.current();
  if (s) await api.post("/auth/logout").catch(() => {});
  endSession();
}

function endSession(message) {
  live.stop();
  push.forget();
  api.setSession(null);
  if (message) toast(message, "error");
  go("/login");
}

let sessionUser = null;
api.onSession((s) => {
  drawNav();
  const id = s && s.user.id;
  if (id !== sessionUser) {
    sessionUser = id;
    if (id) live.start();
  }
});

// ---------------------------------------------------------------------------------------
// Signed-out screens

function started(body) {
  api.setSession(body);
  const next = params().get("next");
  go(next && next.startsWith("/") ? next : "/");
}

function form(title, fields, submitLabel, onSubmit, footer) {
  const f = h("form", { class: "card auth", novalidate: true }, h("h1", { tabindex: "-1" }, title), ...fields, h("button", { type: "submit" }, submitLabel), footer);
  f.addEventListener("submit", async (e) => {
    e.preventDefault();
    const button = f.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await onSubmit(Object.fromEntries(new FormData(f)), f);
    } catch (err) {
      showErrors(f, err);
    } finally {
      button.disabled = false;
    }
  });
  return f;
}

const input = (name, type = "text", extra = {}) => h("input", { name, type, required: true, ...extra });

function login() {
  return form(
    "Log in",
    [field("Username or e-mail", input("login", "text", { autocomplete: "username" })), field("Password", input("password", "password", { autocomplete: "current-password" }))],
    "Log in",
    async (v) => started(await api.post("/auth/login", v)),
    h("p", {}, link("/register", "Create an account"), " · ", link("/forgot", "Forgot password?")),
  );
}

function register() {
  return form(
    "Create an account",
    [
      field("Username", input("username", "text", { autocomplete: "username" })),
      field("E-mail", input("email", "email", { autocomplete: "email" })),
      field("Password (8 characters or more)", input("password", "password", { autocomplete: "new-password", minlength: 8 })),
    ],
    "Sign up",
    async (v) => started(await api.post("/auth/register", v)),
    h("p", {}, "Have an account? ", link("/login", "Log in")),
  );
}

function forgot() {
  return form(
    "Reset your password",
    [field("E-mail", input("email", "email", { autocomplete: "email" }))],
    "Send a reset link",
    async (v, f) => {
      await api.post("/auth/password/forgot", v);
      fill(f, h("h1", { tabindex: "-1" }, "Check your e-mail"), h("p", {}, "If an account has that address, a link to reset its password is on its way."), link("/login", "Back to log in"));
    },
  );
}

function reset(q) {
  return form(
    "Choose a new password",
    [field("New password", input("new_password", "password", { autocomplete: "new-password", minlength: 8 })), h("input", { type: "hidden", name: "token", value: q.get("token") || "" })],
    "Set password",
    async (v) => {
      await api.post("/auth/password/reset", v);
      toast("Password changed. Log in with the new one.");
      go("/login");
    },
  );
}

function verify(q) {
  const token = q.get("token");
  const box = h("section", { class: "card" }, h("h1", { tabindex: "-1" }, "Verifying your e-mail…"));
  api.post("/auth/email/verify", { token }).then(
    () => fill(box, h("h1", { tabindex: "-1" }, "E-mail verified"), link("/", "Continue")),
    (e) => fill(box, h("h1", { tabindex: "-1" }, "This link does not work"), h("p", {}, e.message), link("/", "Home")),
  );
  return box;
}

// ---------------------------------------------------------------------------------------

drawNav();
push.register();
if (api.current()) {
  sessionUser = api.me().id;
  live.start();
  // The cached account may be stale (role, avatar): read it again.
  api.get("/auth/me").then((u) => api.setMe(u), () => {});
}
render();
