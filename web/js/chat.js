// Chat: the conversation list (unread counts, last message, requests) and one conversation
// with live messages, typing, read receipts, reactions, edits, deletions and images.
// Messages go through the socket's outbox (live.sendMessage): one typed while offline is
// shown as "Sending…" and sent on reconnect with the same client_msg_id, never twice.

import * as api from "./api.js";
import { live } from "./live.js";
import { h, fill, link, go, avatar, userLink, ago, toast, attempt, showErrors } from "./ui.js";
import { Scope, types, report, processed } from "./feed.js";

const big = (id) => BigInt(id);

function titleOf(c) {
  if (c.title) return c.title;
  const me = api.me().id;
  const others = c.members.filter((m) => m.user.id !== me).map((m) => m.user.display_name || m.user.username);
  return others.join(", ") || "Just you";
}

function preview(m) {
  if (!m) return "No messages yet";
  if (m.deleted) return "Message deleted";
  const who = m.sender.id === api.me().id ? "You: " : "";
  return who + (m.body || (m.media.length ? "📷 Photo" : ""));
}

export async function list(root) {
  const scope = new Scope();
  const box = h("ul", { class: "card conversations" });
  const reqs = h("section", { class: "card requests", hidden: true }, h("h2", {}, "Message requests"));
  root.append(h("h1", { tabindex: "-1" }, "Chat"), newConversation(), reqs, box);
  const draw = async () => {
    const page = await api.get("/conversations?limit=50");
    fill(
      box,
      page.items.length
        ? page.items.map((c) =>
            h(
              "li",
              { class: "conversation" + (c.unread_count ? " unread" : ""), dataset: { conversationId: c.id } },
              link(`/chat/${c.id}`, h("strong", {}, titleOf(c)), c.unread_count ? h("span", { class: "badge", "aria-label": `${c.unread_count} unread` }, String(c.unread_count)) : null, h("div", { class: "muted last" }, preview(c.last_message))),
              c.last_message ? ago(c.last_message.created_at) : null,
            ),
          )
        : h("li", { class: "muted" }, "No conversations yet. Start one above, or from a profile."),
    );
    const r = await api.get("/conversations/requests").catch(() => ({ items: [] }));
    reqs.hidden = !r.items.length;
    fill(
      reqs,
      h("h2", {}, "Message requests"),
      r.items.map((q) =>
        h(
          "div",
          { class: "person" },
          avatar(q.from),
          userLink(q.from),
          h("span", { class: "muted" }, q.kind === "invitation" ? " invites you to " + titleOf(q.conversation) : " wants to message you"),
          h("button", { type: "button", onclick: () => attempt(async () => (await api.post(`/conversations/${q.conversation.id}/accept`), go(`/chat/${q.conversation.id}`))) }, "Accept"),
          h("button", { type: "button", class: "secondary", onclick: () => attempt(async () => (await api.post(`/conversations/${q.conversation.id}/decline`), draw())) }, "Decline"),
        ),
      ),
    );
  };
  await draw();
  let t;
  scope.add(
    live.on("*", (event, _d, frame) => {
      if (frame.topic && frame.topic.startsWith("chat:") && event !== "typing") {
        clearTimeout(t);
        t = setTimeout(() => draw().catch(() => {}), 150);
      }
    }),
  );
  return scope.end;
}

function newConversation() {
  const who = h("input", { name: "usernames", placeholder: "usernames, separated by commas", required: true });
  const title = h("input", { name: "title", placeholder: "Group name (for more than one person)" });
  const f = h("form", { class: "card new-conversation" }, h("h2", {}, "New conversation"), h("label", {}, "To ", who), h("label", {}, "Title ", title), h("button", { type: "submit" }, "Start"));
  f.onsubmit = async (e) => {
    e.preventDefault();
    try {
      const names = who.value.split(",").map((s) => s.trim().replace(/^@/, "")).filter(Boolean);
      let c;
      if (names.length === 1 && !title.value.trim()) c = await api.post("/conversations", { kind: "direct", user_id: "@" + names[0] });
      else {
        const users = await Promise.all(names.map((n) => api.get(`/users/@${n}`)));
        c = await api.post("/conversations", { kind: "group", title: title.value.trim() || names.join(", "), member_ids: users.map((u) => u.id) });
      }
      go(`/chat/${c.id}`);
    } catch (err) {
      showErrors(f, err);
    }
  };
  return f;
}

export async function conversation(root, id) {
  const scope = new Scope();
  const me = api.me();
  let conv;
  try {
    conv = await api.get(`/conversations/${id}`);
  } catch (e) {
    fill(root, h("section", { class: "card" }, h("h1", { tabindex: "-1" }, "This conversation is not available"), h("p", { class: "muted" }, e.message)));
    return;
  }
  const topic = `chat:${id}`;
  const reads = new Map(conv.members.map((m) => [m.user.id, m.last_read_message_id]));
  const names = new Map(conv.members.map((m) => [m.user.id, m.user.display_name || m.user.username]));
  const msgs = h("ol", { class: "messages", "aria-live": "polite", "aria-label": "Messages" });
  const receipt = h("p", { class: "receipt muted", role: "status" });
  const typing = h("p", { class: "typing muted", "aria-live": "polite" });
  const older = h("button", { type: "button", class: "link" }, "Load older messages");
  const byId = new Map();
  const pending = new Map(); // client_msg_id → element
  let oldest = null;
  let newest = null;

  const bubble = (m) => {
    const mine = m.sender.id === me.id;
    const body = h("div", { class: "body" }, m.deleted ? h("em", {}, "Message deleted") : m.body || "");
    const media = m.media.map((x) => {
      const v = x.variants.find((v) => v.name === "feed") || x.variants[0];
      return v ? h("img", { src: v.url, alt: x.alt_text || "image", class: "message-image" }) : null;
    });
    const counts = h("span", { class: "message-reactions" });
    const drawCounts = async (rc) => {
      const emoji = new Map((await types().catch(() => [])).map((t) => [t.key, t]));
      fill(counts, Object.entries(rc || {}).map(([k, n]) => h("span", { class: "chip", title: emoji.get(k)?.label || k, "aria-label": `${emoji.get(k)?.label || k} ${n}` }, emoji.get(k)?.emoji || k, " ", String(n))));
    };
    drawCounts(m.reaction_counts);
    const tools = h("span", { class: "tools" });
    if (!m.deleted && !m.pending) {
      const react = h("button", { type: "button", class: "link", "aria-label": "React" }, "☺");
      react.onclick = async () => {
        const list = await types();
        const menu = h("span", { class: "picker", role: "menu" }, list.map((t) => h("button", { type: "button", role: "menuitem", title: t.label, "aria-label": t.label, onclick: () => attempt(async () => (menu.remove(), drawCounts((await api.put(`/messages/${m.id}/reaction`, { type: t.key })).reaction_counts))) }, t.emoji)));
        tools.append(menu);
        menu.querySelector("button").focus();
      };
      tools.append(react);
      if (mine) {
        tools.append(
          h("button", { type: "button", class: "link", onclick: () => editMessage(m, body) }, "Edit"),
          h("button", { type: "button", class: "link danger", onclick: () => confirm("Delete this message for everyone?") && attempt(() => api.del(`/messages/${m.id}`)) }, "Delete"),
        );
      } else tools.append(h("button", { type: "button", class: "link", onclick: () => report("message", m.id) }, "Report"));
    }
    const el = h(
      "li",
      { class: "message" + (mine ? " mine" : "") + (m.pending ? " pending" : ""), dataset: { messageId: m.id || "", clientMsgId: m.client_msg_id || "" } },
      mine ? null : h("div", { class: "sender" }, avatar(m.sender, "xs"), " ", m.sender.display_name || m.sender.username),
      body,
      media,
      h("div", { class: "meta" }, m.pending ? h("span", { class: "muted" }, "Sending…") : ago(m.created_at), m.edited ? h("span", { class: "muted" }, " · edited") : null, " ", counts, tools),
    );
    el.drawCounts = drawCounts;
    return el;
  };

  const place = (m) => {
    if (byId.has(m.id)) return false;
    const el = bubble(m);
    byId.set(m.id, el);
    const p = m.client_msg_id && pending.get(m.client_msg_id);
    if (p) {
      pending.delete(m.client_msg_id);
      p.replaceWith(el);
    } else if (!newest || big(m.id) > big(newest)) {
      const firstPending = msgs.querySelector(".pending");
      if (firstPending) firstPending.before(el);
      else msgs.append(el);
    } else {
      // An older one (a page of history): before the first newer one shown.
      const after = [...msgs.children].find((c) => c.dataset.messageId && big(c.dataset.messageId) > big(m.id));
      msgs.insertBefore(el, after || null);
    }
    if (!newest || big(m.id) > big(newest)) newest = m.id;
    if (!oldest || big(m.id) < big(oldest)) oldest = m.id;
    return true;
  };

  const drawReceipt = () => {
    const mine = [...byId.keys()].filter((mid) => byId.get(mid).classList.contains("mine")).sort((a, b) => (big(a) < big(b) ? -1 : 1));
    const last = mine[mine.length - 1];
    if (!last) return fill(receipt);
    const readers = [...reads.entries()].filter(([uid, r]) => uid !== me.id && r && big(r) >= big(last)).map(([uid]) => names.get(uid) || "someone");
    fill(receipt, readers.length ? (conv.kind === "direct" ? "Seen" : "Seen by " + readers.join(", ")) : "Sent");
  };

  let readSent = null;
  const markRead = () => {
    if (!newest || document.hidden) return;
    const theirs = [...byId.keys()].filter((mid) => !byId.get(mid).classList.contains("mine"));
    const latest = theirs.sort((a, b) => (big(a) < big(b) ? 1 : -1))[0];
    if (!latest || (readSent && big(latest) <= big(readSent))) return;
    readSent = latest;
    live.request({ op: "chat.read", data: { conversation_id: id, message_id: latest } }).catch(() => (readSent = null));
  };
  const onVisible = () => markRead();
  document.addEventListener("visibilitychange", onVisible);
  scope.add(() => document.removeEventListener("visibilitychange", onVisible));

  const loadOlder = async () => {
    const page = await api.get(`/conversations/${id}/messages` + api.qs({ before: oldest, limit: 30 }));
    for (const m of page.items) place(m);
    older.hidden = !page.next_cursor && page.items.length < 30;
  };
  older.onclick = () => attempt(loadOlder);

  // The composer
  const input = h("textarea", { name: "body", rows: 1, placeholder: "Message…", "aria-label": "Message", maxlength: 4000 });
  const pic = h("input", { type: "file", accept: "image/*", "aria-label": "Attach an image" });
  const form = h("form", { class: "message-form" }, input, h("label", { class: "attach" }, "📎", pic), h("button", { type: "submit" }, "Send"));
  let lastTyping = 0;
  input.addEventListener("input", () => {
    if (Date.now() - lastTyping < 3000 || !input.value) return;
    lastTyping = Date.now();
    live.request({ op: "chat.typing", data: { conversation_id: id } }).catch(() => {});
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  const send = (data) => {
    const client_msg_id = data.client_msg_id || crypto.randomUUID();
    const shown = bubble({ id: null, client_msg_id, sender: me, body: data.body, media: [], reaction_counts: {}, pending: true });
    pending.set(client_msg_id, shown);
    msgs.append(shown);
    shown.scrollIntoView({ block: "end" });
    live.sendMessage({ ...data, conversation_id: id, client_msg_id }).then(
      (m) => {
        place(m);
        drawReceipt();
      },
      (err) => {
        pending.delete(client_msg_id);
        shown.remove();
        toast(err.message, "error");
      },
    );
  };
  form.onsubmit = (e) => {
    e.preventDefault();
    const body = input.value.trim();
    if (!body) return;
    input.value = "";
    lastTyping = 0;
    send({ body });
  };
  pic.onchange = () =>
    attempt(async () => {
      const file = pic.files[0];
      pic.value = "";
      if (!file) return;
      const up = await api.upload(file);
      const ready = await processed(up.id);
      if (!ready) return toast("That image could not be processed.", "error");
      send({ media_ids: [up.id], body: input.value.trim() || undefined });
      input.value = "";
    });

  // Muting stops this conversation's notifications (in the app, by e-mail, by push) for me.
  const mute = h("button", { type: "button", class: "link mute", "aria-pressed": String(conv.muted) }, conv.muted ? "Unmute" : "Mute");
  mute.onclick = () =>
    attempt(async () => {
      const on = mute.getAttribute("aria-pressed") !== "true";
      await (on ? api.put(`/conversations/${id}/mute`) : api.del(`/conversations/${id}/mute`));
      mute.setAttribute("aria-pressed", String(on));
      mute.textContent = on ? "Unmute" : "Mute";
      toast(on ? "Muted: this conversation will not notify you." : "Unmuted.");
    });
  const header = h("header", { class: "row" }, h("h1", { tabindex: "-1" }, titleOf(conv)), h("span", { class: "muted" }, conv.members.map((m) => userLink(m.user)).reduce((a, b) => [a, ", ", b])), mute);
  root.append(h("section", { class: "card chat" }, header, older, msgs, typing, receipt, form));

  const history = await api.get(`/conversations/${id}/messages?limit=30`);
  for (const m of history.items) place(m);
  older.hidden = history.items.length < 30;
  // Messages still in the outbox (typed while offline, before a page change).
  for (const d of live.unsent(id)) {
    const el = bubble({ id: null, client_msg_id: d.client_msg_id, sender: me, body: d.body, media: [], reaction_counts: {}, pending: true });
    pending.set(d.client_msg_id, el);
    msgs.append(el);
  }
  drawReceipt();
  markRead();
  msgs.lastElementChild?.scrollIntoView({ block: "end" });

  let typingTimer;
  scope.add(
    live.on(topic, (event, data) => {
      if (event === "message.created") {
        if (place(data)) {
          byId.get(data.id).scrollIntoView({ block: "end" });
          if (data.sender.id !== me.id) fill(typing);
        }
        markRead();
      } else if (event === "message.updated") {
        const el = byId.get(data.id);
        if (el) {
          const n = bubble(data);
          el.replaceWith(n);
          byId.set(data.id, n);
        }
      } else if (event === "message.deleted") {
        const el = byId.get(data.id);
        if (el) fill(el.querySelector(".body"), h("em", {}, "Message deleted"));
      } else if (event === "message.reaction") {
        byId.get(data.message_id)?.drawCounts(data.reaction_counts);
      } else if (event === "typing" && data.user_id !== me.id) {
        fill(typing, `${names.get(data.user_id) || "Someone"} is typing…`);
        clearTimeout(typingTimer);
        typingTimer = setTimeout(() => fill(typing), data.expires_in_ms || 5000);
      } else if (event === "read") {
        if (!reads.get(data.user_id) || big(data.message_id) > big(reads.get(data.user_id))) reads.set(data.user_id, data.message_id);
      } else if (event === "member.added") {
        names.set(data.user.id, data.user.display_name || data.user.username);
      } else if (event === "resync") {
        api.get(`/conversations/${id}/messages?limit=30`).then((p) => p.items.forEach(place), () => {});
      } else if (event === "unsubscribed") {
        form.replaceWith(h("p", { class: "muted" }, "You are no longer in this conversation."));
      }
      drawReceipt();
    }),
  );
  scope.add(() => clearTimeout(typingTimer));
  input.focus();
  return scope.end;
}

function editMessage(m, body) {
  const area = h("textarea", { rows: 2, "aria-label": "Edit message" }, m.body || "");
  const f = h("form", { class: "inline" }, area, h("button", { type: "submit" }, "Save"), h("button", { type: "button", class: "link", onclick: () => f.replaceWith(body) }, "Cancel"));
  f.onsubmit = (e) => {
    e.preventDefault();
    attempt(async () => {
      await api.patch(`/messages/${m.id}`, { body: area.value });
      f.replaceWith(body);
    });
  };
  body.replaceWith(f);
  area.focus();
}
