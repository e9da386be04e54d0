// The service worker: shows the notifications Chorus pushes while no tab has a socket open
// (the server sends them only then), and opens what one points at when it is clicked.
// A push carries {kind, title, body, url, tag, notification_id}; `tag` is the group, so a
// newer notification of the group ("bob and 2 others reacted…") replaces the older one.

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

function payload(data) {
  if (!data) return {};
  try {
    return data.json();
  } catch {
    return { title: data.text() };
  }
}

self.addEventListener("push", (event) => {
  const p = payload(event.data);
  event.waitUntil(
    self.registration.showNotification(p.title || "Chorus", {
      body: p.body || "",
      tag: p.tag || undefined,
      icon: "/assets/icon.svg",
      data: { url: p.url || "/notifications", kind: p.kind || "" },
    }),
  );
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const target = new URL(event.notification.data?.url || "/", self.location.origin);
  if (target.origin !== self.location.origin) return;
  event.waitUntil(
    (async () => {
      const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
      const open = windows.find((w) => new URL(w.url).origin === self.location.origin);
      if (open) {
        await open.focus();
        // navigate() works on windows this worker controls only (not after a hard reload).
        try {
          return await open.navigate(target.href);
        } catch {
          /* fall through to a new window */
        }
      }
      return self.clients.openWindow(target.href);
    })(),
  );
});
