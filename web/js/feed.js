// Posts: the home feed (new posts arriving live), explore, hashtags, saved, one post with its
// comments, and the composer with upload progress and processing state.

import * as api from "./api.js";
import { live } from "./live.js";
import { h, fill, link, go, avatar, userLink, rich, ago, toast, attempt, infinite, field, showErrors } from "./ui.js";

let reactionTypes = null;
/** The active reaction types, read once per page load. */
export async function types() {
  if (!reactionTypes) reactionTypes = api.get("/reaction-types").catch((e) => ((reactionTypes = null), Promise.reject(e)));
  return reactionTypes;
}

/** A view's live subscriptions and observers, ended together when the view goes. */
class Scope {
  constructor() {
    this.offs = [];
  }
  add(off) {
    this.offs.push(off);
    return off;
  }
  end = () => {
    for (const off of this.offs.splice(0)) off();
  };
}

// ---------------------------------------------------------------------------------------
// A post

function mediaOf(post) {
  if (!post.media.length) return null;
  return h(
    "div",
    { class: "media" + (post.media.length > 1 ? " media-many" : "") },
    post.media.map((m) => {
      const v = m.variants.find((x) => x.name === "feed") || m.variants[m.variants.length - 1];
      if (m.status !== "ready" || !v) return h("div", { class: "media-pending" }, m.status === "failed" ? "Could not process this file" : "Processing…");
      const alt = m.alt_text || "";
      if (m.kind === "video") return h("video", { src: v.url, controls: true, preload: "metadata", "aria-label": alt || "video" });
      return h("img", { src: v.url, alt, width: v.width || undefined, height: v.height || undefined, loading: "lazy" });
    }),
  );
}

/** The reactions bar of a post or comment: a button per type with its count. */
export function reactionsBar(target, kind, path) {
  const bar = h("div", { class: "reactions", role: "group", "aria-label": "reactions" });
  const draw = async () => {
    const list = await types().catch(() => []);
    fill(
      bar,
      list.map((t) => {
        const n = target.reaction_counts[t.key] || 0;
        const mine = target.my_reaction === t.key;
        return h(
          "button",
          {
            type: "button",
            class: "reaction" + (mine ? " mine" : ""),
            "aria-pressed": mine ? "true" : "false",
            "aria-label": `${t.label}${n ? ", " + n : ""}`,
            title: t.label,
            dataset: { reaction: t.key },
            onclick: () =>
              attempt(async () => {
                const r = mine ? await api.del(`${path}/reaction`) : await api.put(`${path}/reaction`, { type: t.key });
                target.reaction_counts = r.reaction_counts;
                target.my_reaction = r.my_reaction;
                draw();
              }),
          },
          t.emoji,
          n ? h("span", { class: "count" }, String(n)) : null,
        );
      }),
    );
  };
  draw();
  bar.update = (counts) => {
    target.reaction_counts = counts;
    draw();
  };
  return bar;
}

/** A post as a card; `scope` ends its live subscription. */
export function postCard(post, scope, { full = false } = {}) {
  const me = api.me();
  const caption = h("p", { class: "caption" }, rich(post.caption));
  const reactions = reactionsBar(post, "post", `/posts/${post.id}`);
  const commentLabel = h("span", {}, post.comment_count === 1 ? " comment" : " comments");
  const comments = link(`/p/${post.id}`, h("span", { class: "comment-count" }, String(post.comment_count)), commentLabel);
  const saveBtn = h("button", { type: "button", class: "link", "aria-pressed": String(post.saved) }, post.saved ? "Saved" : "Save");
  saveBtn.onclick = () =>
    attempt(async () => {
      if (post.saved) await api.del(`/posts/${post.id}/save`);
      else await api.post(`/posts/${post.id}/save`);
      post.saved = !post.saved;
      saveBtn.textContent = post.saved ? "Saved" : "Save";
      saveBtn.setAttribute("aria-pressed", String(post.saved));
    });
  const actions = [];
  if (me && post.author.id === me.id) {
    actions.push(h("button", { type: "button", class: "link", onclick: () => editCaption(post, card, caption) }, "Edit"));
    actions.push(
      h(
        "button",
        {
          type: "button",
          class: "link danger",
          onclick: () => confirm("Delete this post?") && attempt(async () => (await api.del(`/posts/${post.id}`), card.remove(), full && go("/"))),
        },
        "Delete",
      ),
    );
  } else if (me) {
    actions.push(h("button", { type: "button", class: "link", onclick: () => report("post", post.id) }, "Report"));
  }
  const card = h(
    "article",
    { class: "card post", dataset: { postId: post.id }, "aria-label": `Post by ${post.author.username}` },
    h("header", {}, avatar(post.author), h("div", {}, userLink(post.author), h("div", { class: "muted" }, link(`/p/${post.id}`, ago(post.created_at))))),
    mediaOf(post),
    caption,
    h("footer", {}, reactions, h("div", { class: "post-actions" }, comments, saveBtn, ...actions)),
  );
  card.unwatch = scope.add(
    live.watch(`post:${post.id}`, (event, data) => {
      if (event === "reaction.changed" && data.target_kind === "post") reactions.update(data.reaction_counts);
      if (event === "comment.created") {
        post.comment_count++;
        card.querySelector(".comment-count").textContent = String(post.comment_count);
        commentLabel.textContent = post.comment_count === 1 ? " comment" : " comments";
      }
      if (event === "post.updated") fill(caption, rich((post.caption = data.caption)));
      if (event === "post.deleted") card.replaceWith(h("p", { class: "card muted" }, "This post was deleted."));
    }),
  );
  return card;
}

function editCaption(post, card, caption) {
  const area = h("textarea", { name: "caption", rows: 3, "aria-label": "Caption" }, post.caption);
  const f = h("form", { class: "inline" }, area, h("button", { type: "submit" }, "Save"), h("button", { type: "button", class: "link", onclick: () => f.replaceWith(caption) }, "Cancel"));
  f.onsubmit = (e) => {
    e.preventDefault();
    attempt(async () => {
      const p = await api.patch(`/posts/${post.id}`, { caption: area.value });
      post.caption = p.caption;
      fill(caption, rich(p.caption));
      f.replaceWith(caption);
    });
  };
  caption.replaceWith(f);
  area.focus();
}

const REASONS = ["spam", "harassment", "hate", "violence", "sexual", "self_harm", "misinformation", "impersonation", "illegal", "other"];

/** Asks for a reason and files a report. */
export function report(target_type, target_id) {
  const select = h("select", { name: "reason" }, REASONS.map((r) => h("option", { value: r }, r.replace("_", " "))));
  const note = h("textarea", { name: "note", rows: 2, maxlength: 1000 });
  const dialog = h("dialog", { class: "card", "aria-label": "Report" });
  const f = h("form", { method: "dialog" }, h("h2", {}, "Report"), field("Reason", select), field("Note (optional)", note), h("button", { type: "submit" }, "Send report"), h("button", { type: "button", class: "link", onclick: () => dialog.close() }, "Cancel"));
  f.onsubmit = async (e) => {
    e.preventDefault();
    try {
      await api.post("/reports", { target_type, target_id, reason: select.value, note: note.value || undefined });
      dialog.close();
      toast("Thanks: a moderator will look at it.");
    } catch (err) {
      showErrors(f, err);
    }
  };
  dialog.append(f);
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
}

// ---------------------------------------------------------------------------------------
// Lists of posts

/** Posts of one list updating live at most (the server allows 256 topics per connection). */
const MAX_WATCHED = 120;

/** A paged list of posts over `path`'s cursors, scrolled without end; returns its Scope. */
function postList(root, path, scope, empty) {
  const list = h("div", { class: "posts", "aria-live": "off" });
  const sentinel = h("div", { class: "sentinel", "aria-hidden": "true" });
  const shown = new Set();
  const watched = [];
  let cursor = null;
  let done = false;
  root.append(list, sentinel);
  const more = async () => {
    if (done) return false;
    const sep = path.includes("?") ? "&" : "?";
    const page = await api.get(path + (cursor ? `${sep}cursor=${encodeURIComponent(cursor)}` : ""));
    for (const p of page.items) {
      if (shown.has(p.id)) continue;
      shown.add(p.id);
      const card = postCard(p, scope);
      list.append(card);
      watched.push(card);
    }
    // A connection may watch a bounded number of topics (`max_subscriptions`): the posts
    // scrolled furthest past stop updating live.
    while (watched.length > MAX_WATCHED) watched.shift().unwatch();
    cursor = page.next_cursor;
    done = !cursor;
    if (done && !shown.size) list.append(h("p", { class: "muted empty" }, empty));
    return !done;
  };
  scope.add(infinite(sentinel, more));
  return { list, shown, more };
}

export async function home(root) {
  const scope = new Scope();
  const banner = h("button", { type: "button", class: "new-posts", hidden: true });
  root.append(h("h1", { class: "sr-only", tabindex: "-1" }, "Home"), banner);
  const { list, shown } = postList(root, "/feed", scope, "Your feed is empty. Follow people from Explore.");
  let waiting = [];
  const showWaiting = () => {
    list.querySelector(".empty")?.remove();
    for (const p of waiting.reverse()) list.prepend(postCard(p, scope));
    waiting = [];
    banner.hidden = true;
    banner.blur();
    scrollTo({ top: 0 });
  };
  banner.onclick = showWaiting;
  scope.add(
    live.on("feed", (event, data) => {
      if (event === "post.created" && !shown.has(data.id)) {
        shown.add(data.id);
        // Own posts go straight in; others wait behind the banner, so nothing moves under the reader.
        if (data.author.id === api.me().id) {
          list.querySelector(".empty")?.remove();
          return list.prepend(postCard(data, scope));
        }
        waiting.push(data);
        banner.textContent = waiting.length === 1 ? "1 new post" : `${waiting.length} new posts`;
        banner.hidden = false;
      }
      if (event === "post.deleted") {
        waiting = waiting.filter((p) => p.id !== data.id);
        const el = list.querySelector(`[data-post-id="${data.id}"]`);
        if (el) el.remove();
      }
      if (event === "resync") go("/");
    }),
  );
  return scope.end;
}

export async function explore(root) {
  const scope = new Scope();
  const q = h("input", { type: "search", name: "q", placeholder: "Search people", "aria-label": "Search people" });
  const results = h("div", { class: "people" });
  q.oninput = async () => {
    const term = q.value.trim();
    if (!term) return fill(results);
    const page = await api.get("/users/search" + api.qs({ q: term })).catch(() => ({ items: [] }));
    if (q.value.trim() === term) fill(results, page.items.map((u) => h("div", { class: "person" }, avatar(u), userLink(u))));
  };
  root.append(h("h1", { tabindex: "-1" }, "Explore"), q, results);
  postList(root, "/explore", scope, "Nothing to explore yet.");
  return scope.end;
}

export async function tag(root, name) {
  const scope = new Scope();
  root.append(h("h1", { tabindex: "-1" }, "#" + name));
  postList(root, `/tags/${encodeURIComponent(name)}/posts`, scope, "No posts with this hashtag yet.");
  return scope.end;
}

export async function saved(root) {
  const scope = new Scope();
  root.append(h("h1", { tabindex: "-1" }, "Saved"));
  postList(root, "/users/me/saved", scope, "Nothing saved yet.");
  return scope.end;
}

/** A user's posts (for the profile). */
export function userPosts(root, user, scope) {
  const { list, shown } = postList(root, `/users/${user.id}/posts`, scope, "No posts yet.");
  scope.add(
    live.watch(`user:${user.id}`, (event, data) => {
      if (event === "post.created" && !shown.has(data.id)) {
        shown.add(data.id);
        list.querySelector(".empty")?.remove();
        list.prepend(postCard(data, scope));
      }
      if (event === "post.deleted") list.querySelector(`[data-post-id="${data.id}"]`)?.remove();
    }),
  );
}

// ---------------------------------------------------------------------------------------
// One post and its comments

export async function postPage(root, id) {
  const scope = new Scope();
  let post;
  try {
    post = await api.get(`/posts/${id}`);
  } catch (e) {
    fill(root, h("section", { class: "card" }, h("h1", { tabindex: "-1" }, e.status === 404 ? "This post is not available" : "Could not load the post"), h("p", { class: "muted" }, e.message)));
    return;
  }
  root.append(h("h1", { class: "sr-only", tabindex: "-1" }, `Post by ${post.author.username}`), postCard(post, scope, { full: true }));
  const thread = h("section", { class: "card comments", "aria-label": "Comments" });
  root.append(thread);
  const byId = new Map();
  const top = h("ol", { class: "comment-list" });
  const sentinel = h("div", { class: "sentinel" });
  thread.append(h("h2", {}, "Comments"), commentForm(post.id, null), top, sentinel);
  let cursor = null;
  let done = false;
  const place = (c, atEnd) => {
    if (byId.has(c.id)) return;
    const el = commentItem(c, post.id, byId);
    byId.set(c.id, el);
    if (!c.parent_id) return atEnd ? top.append(el) : top.prepend(el);
    const parent = byId.get(c.parent_id);
    if (parent) parent.replies.append(el);
  };
  scope.add(
    infinite(sentinel, async () => {
      if (done) return false;
      const page = await api.get(`/posts/${post.id}/comments` + api.qs({ cursor }));
      for (const c of page.items) place(c, true);
      cursor = page.next_cursor;
      done = !cursor;
      return !done;
    }),
  );
  scope.add(
    live.on(`post:${post.id}`, (event, data) => {
      if (event === "comment.created") place(data, true);
      if (event === "comment.updated") byId.get(data.id)?.update(data);
      if (event === "comment.deleted") byId.get(data.id)?.gone(data.tombstone);
      if (event === "reaction.changed" && data.target_kind === "comment") byId.get(data.target_id)?.reactions.update(data.reaction_counts);
    }),
  );
  return scope.end;
}

function commentForm(postId, parentId, onDone) {
  const area = h("textarea", { name: "body", rows: 2, required: true, "aria-label": parentId ? "Reply" : "Add a comment", placeholder: parentId ? "Reply…" : "Add a comment…" });
  const f = h("form", { class: "comment-form" }, area, h("button", { type: "submit" }, parentId ? "Reply" : "Comment"));
  f.onsubmit = async (e) => {
    e.preventDefault();
    try {
      await api.post(`/posts/${postId}/comments`, { body: area.value, parent_id: parentId || undefined });
      area.value = "";
      if (onDone) onDone();
    } catch (err) {
      showErrors(f, err);
    }
  };
  return f;
}

function commentItem(c, postId, byId) {
  const me = api.me();
  const body = h("p", { class: "comment-body" }, c.deleted ? h("em", { class: "muted" }, "deleted") : rich(c.body || ""));
  const replies = h("ol", { class: "comment-list replies" });
  const reactions = reactionsBar(c, "comment", `/comments/${c.id}`);
  const tools = h("div", { class: "comment-tools" });
  const el = h("li", { class: "comment", dataset: { commentId: c.id } }, h("div", { class: "comment-head" }, avatar(c.author, "xs"), userLink(c.author), " ", ago(c.created_at)), body, h("div", { class: "comment-foot" }, reactions, tools), replies);
  const reply = h("button", { type: "button", class: "link" }, "Reply");
  reply.onclick = () => {
    const f = commentForm(postId, c.id, () => f.remove());
    tools.after(f);
    f.querySelector("textarea").focus();
  };
  tools.append(reply);
  if (c.reply_count > 0) {
    const more = h("button", { type: "button", class: "link" }, `View replies (${c.reply_count})`);
    more.onclick = () =>
      attempt(async () => {
        more.remove();
        let cursor = null;
        do {
          const page = await api.get(`/comments/${c.id}/replies` + api.qs({ cursor }));
          for (const r of page.items) {
            if (byId.has(r.id)) continue;
            const child = commentItem(r, postId, byId);
            byId.set(r.id, child);
            replies.append(child);
          }
          cursor = page.next_cursor;
        } while (cursor);
      });
    tools.append(more);
  }
  if (me && c.author && c.author.id === me.id && !c.deleted) {
    tools.append(
      h(
        "button",
        {
          type: "button",
          class: "link",
          onclick: () => {
            const area = h("textarea", { rows: 2, "aria-label": "Edit comment" }, c.body);
            const f = h("form", { class: "inline" }, area, h("button", { type: "submit" }, "Save"));
            f.onsubmit = (e) => (e.preventDefault(), attempt(async () => (el.update(await api.patch(`/comments/${c.id}`, { body: area.value })), f.replaceWith(body))));
            body.replaceWith(f);
          },
        },
        "Edit",
      ),
      h("button", { type: "button", class: "link danger", onclick: () => confirm("Delete this comment?") && attempt(() => api.del(`/comments/${c.id}`)) }, "Delete"),
    );
  } else if (me && c.author) {
    tools.append(h("button", { type: "button", class: "link", onclick: () => report("comment", c.id) }, "Report"));
  }
  el.replies = replies;
  el.reactions = reactions;
  el.update = (n) => fill(body, rich(n.body || ""));
  el.gone = (tombstone) => {
    if (!tombstone) return el.remove();
    fill(body, h("em", { class: "muted" }, "deleted"));
    tools.replaceChildren();
  };
  return el;
}

// ---------------------------------------------------------------------------------------
// The composer
/** Resolves to whether upload `id` came out `ready` (false: `failed`): from the `image`
 * topic, or from the item itself when processing finished before anyone listened. */
export function processed(id) {
  return new Promise((resolve) => {
    const off = live.on("image", (event, data) => data.id === id && event !== "media.processing" && (off(), resolve(event === "media.ready")));
    api.get(`/media/${id}`).then((m) => m.status !== "processing" && (off(), resolve(m.status === "ready")), () => {});
  });
}


export async function composer(root) {
  const scope = new Scope();
  const items = []; // {file, id, status, alt, el}
  const caption = h("textarea", { name: "caption", rows: 4, maxlength: 2200, placeholder: "Write a caption… #hashtags and @mentions work" });
  const files = h("input", { type: "file", name: "files", accept: "image/jpeg,image/png,image/webp,image/gif,video/mp4,video/webm,video/quicktime", multiple: true });
  const tray = h("ul", { class: "uploads" });
  const submit = h("button", { type: "submit" }, "Share");
  const f = h("form", { class: "card composer" }, h("h1", { tabindex: "-1" }, "New post"), field("Caption", caption), field("Photos (up to 10) or a video", files), tray, submit);
  root.append(f);
  const refresh = () => {
    const busy = items.some((i) => i.status !== "ready");
    submit.disabled = busy || (!items.length && !caption.value.trim());
  };
  caption.oninput = refresh;
  scope.add(
    live.on("image", (event, data) => {
      const it = items.find((i) => i.id === data.id);
      if (!it) return;
      it.status = data.status;
      it.el.querySelector(".state").textContent = event === "media.ready" ? "Ready" : event === "media.failed" ? "Failed: " + data.reason : "Processing…";
      if (event === "media.ready") {
        const thumb = data.variants.find((v) => v.name === "thumb");
        if (thumb && data.kind === "image") it.el.querySelector(".preview").src = thumb.url;
      }
      refresh();
    }),
  );
  files.onchange = () => {
    const chosen = [...files.files];
    files.value = "";
    const videos = chosen.filter((x) => x.type.startsWith("video/")).length + items.filter((i) => i.file.type.startsWith("video/")).length;
    if (items.length + chosen.length > 10) return toast("A post holds at most 10 files.", "error");
    if (videos && items.length + chosen.length > 1) return toast("A video is posted on its own.", "error");
    for (const file of chosen) {
      const bar = h("progress", { max: 1, value: 0, "aria-label": `Uploading ${file.name}` });
      const state = h("span", { class: "state", role: "status" }, "Uploading…");
      const preview = h("img", { class: "preview", alt: "", src: file.type.startsWith("image/") ? URL.createObjectURL(file) : "" });
      const it = { file, id: null, status: "uploading" };
      const remove = h("button", { type: "button", class: "link danger", "aria-label": `Remove ${file.name}` }, "Remove");
      remove.onclick = () => {
        items.splice(items.indexOf(it), 1);
        it.el.remove();
        if (it.id) api.del(`/media/${it.id}`).catch(() => {});
        refresh();
      };
      it.alt = h("input", { type: "text", name: "alt_text", maxlength: 1500, placeholder: "Describe it for people who can't see it", "aria-label": `Alt text for ${file.name}` });
      it.el = h("li", {}, preview, h("div", { class: "upload-info" }, h("div", {}, file.name), bar, state, it.alt), remove);
      items.push(it);
      tray.append(it.el);
      api.upload(file, (p) => (bar.value = p)).then(
        (r) => {
          it.id = r.id;
          bar.value = 1;
          if (it.status === "uploading") {
            it.status = "processing";
            state.textContent = "Processing…";
          }
          // The ready event may have come first, or while the socket was down: ask.
          api.get(`/media/${r.id}`).then((m) => m.status !== "processing" && live.dispatch("image", "media." + m.status, m.status === "ready" ? m : { ...m, reason: m.failure }, {}), () => {});
          refresh();
        },
        (e) => {
          it.status = "failed";
          state.textContent = "Failed: " + e.message;
          refresh();
        },
      );
    }
    refresh();
  };
  f.onsubmit = async (e) => {
    e.preventDefault();
    submit.disabled = true;
    try {
      for (const i of items) if (i.alt.value.trim()) await api.patch(`/media/${i.id}`, { alt_text: i.alt.value.trim() });
      const p = await api.post("/posts", { caption: caption.value, media_ids: items.map((i) => i.id) });
      go(`/p/${p.id}`);
    } catch (err) {
      showErrors(f, err);
      refresh();
    }
  };
  refresh();
  return scope.end;
}

export { Scope };
