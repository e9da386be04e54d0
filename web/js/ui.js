// DOM helpers shared by every view: element building, links, avatars, times, notices.

/** `h("a", {href: "/", onclick}, "text", child)`: an element. Strings become text nodes. */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k in el && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let navigate = () => {};
export function setNavigator(f) {
  navigate = f;
}
/** Client-side navigation to `path`. */
export const go = (path) => navigate(path);

/** A link handled by the client's router (a real `<a href>`, so it can be opened in a tab). */
export function link(path, ...children) {
  return h(
    "a",
    {
      href: path,
      onclick: (e) => {
        if (e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
        e.preventDefault();
        go(path);
      },
    },
    ...children,
  );
}

/** A user's avatar image (or their initial), with a name for screen readers. */
export function avatar(user, size = "sm") {
  const cls = `avatar avatar-${size}`;
  if (user && user.avatar_url) return h("img", { class: cls, src: user.avatar_url, alt: "", loading: "lazy" });
  const name = (user && (user.display_name || user.username)) || "?";
  return h("span", { class: cls + " avatar-initial", "aria-hidden": "true" }, name.slice(0, 1).toUpperCase());
}

/** "@name" linking to the profile, with the display name. */
export function userLink(user) {
  if (!user) return h("span", { class: "muted" }, "deleted account");
  return link(`/u/${user.username}`, h("strong", {}, user.display_name || user.username), " ", h("span", { class: "muted" }, "@" + user.username));
}

/** Text with #hashtags and @mentions as links. */
export function rich(text) {
  const out = [];
  const re = /([#@])([\p{L}\p{N}_]{1,50})/gu;
  let last = 0;
  for (const m of text.matchAll(re)) {
    out.push(text.slice(last, m.index));
    out.push(m[1] === "#" ? link(`/tags/${m[2].toLowerCase()}`, m[0]) : link(`/u/${m[2]}`, m[0]));
    last = m.index + m[0].length;
  }
  out.push(text.slice(last));
  return out;
}

/** "3m", "2h", "5d" or a date, in a `<time>` with the full timestamp. */
export function ago(ts) {
  const d = new Date(ts);
  const s = Math.max(0, (Date.now() - d.getTime()) / 1000);
  const label = s < 60 ? "now" : s < 3600 ? `${Math.floor(s / 60)}m` : s < 86400 ? `${Math.floor(s / 3600)}h` : s < 604800 ? `${Math.floor(s / 86400)}d` : d.toLocaleDateString();
  return h("time", { datetime: ts, title: d.toLocaleString() }, label);
}

/** A short notice at the bottom of the screen, read out by screen readers. */
export function toast(message, kind = "info") {
  const box = document.getElementById("toasts");
  const t = h("div", { class: "toast toast-" + kind, role: kind === "error" ? "alert" : "status" }, message);
  box.append(t);
  setTimeout(() => t.remove(), 5000);
}

/** Runs `f`; a failure becomes an error notice instead of an unhandled rejection. */
export async function attempt(f) {
  try {
    return await f();
  } catch (e) {
    toast(e.message || String(e), "error");
    return undefined;
  }
}

/** A labelled form field. */
export function field(label, input, error) {
  const id = input.id || (input.id = "f" + Math.random().toString(36).slice(2));
  return h("div", { class: "field" }, h("label", { for: id }, label), input, error ? h("p", { class: "field-error", role: "alert" }, error) : null);
}

/** Shows field errors of an ApiError under the named inputs of `form`. */
export function showErrors(form, err) {
  for (const p of form.querySelectorAll(".field-error")) p.remove();
  const fields = (err && err.fields) || {};
  let shown = false;
  for (const [name, msg] of Object.entries(fields)) {
    const input = form.querySelector(`[name="${name}"]`);
    if (!input) continue;
    input.setAttribute("aria-invalid", "true");
    input.after(h("p", { class: "field-error", role: "alert" }, msg));
    shown = true;
  }
  if (!shown && err) {
    const msg = h("p", { class: "field-error", role: "alert" }, err.message);
    form.prepend(msg);
  }
}

/** Calls `more()` whenever `sentinel` scrolls into view, until it resolves to false. */
export function infinite(sentinel, more) {
  let busy = false;
  const io = new IntersectionObserver(async (entries) => {
    if (busy || !entries.some((e) => e.isIntersecting)) return;
    busy = true;
    const again = await more().catch(() => false);
    busy = false;
    if (!again) io.disconnect();
    else if (sentinel.getBoundingClientRect().top < innerHeight) {
      io.unobserve(sentinel);
      io.observe(sentinel);
    }
  });
  io.observe(sentinel);
  return () => io.disconnect();
}

/** A count badge, hidden at zero. */
export function badge(el, n) {
  el.textContent = n > 99 ? "99+" : String(n);
  el.hidden = !n;
}
