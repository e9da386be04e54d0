// Push notifications on this device: the service worker (registered on every load, so a
// subscription keeps working), and subscribing with the server's VAPID key. The server
// ties the device to this login session: signing out removes it there.

import * as api from "./api.js";

const DEVICE = "chorus.push.device";

/** Whether this browser can receive Web Push at all. */
export function supported() {
  return "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;
}

/** Registers the service worker; its registration, or null where unsupported. */
export async function register() {
  if (!("serviceWorker" in navigator)) return null;
  try {
    return await navigator.serviceWorker.register("/sw.js", { scope: "/" });
  } catch {
    return null;
  }
}

function keyBytes(b64) {
  const s = atob(b64.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((b64.length + 3) % 4));
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

/** This device's registration id at the server, if it is registered from this browser. */
export function deviceId() {
  return localStorage.getItem(DEVICE);
}

/** Asks for permission, subscribes, and registers the subscription; the device. */
export async function enable() {
  if (!supported()) throw new Error("This browser cannot receive push notifications.");
  const permission = await Notification.requestPermission();
  if (permission !== "granted") throw new Error("Notifications are blocked for this site in the browser's settings.");
  await register();
  // Subscribing needs an active worker, not one still installing.
  const reg = await navigator.serviceWorker.ready;
  const { public_key } = await api.get("/push/vapid-key");
  let sub = await reg.pushManager.getSubscription();
  if (sub && sub.options.applicationServerKey) {
    const current = new Uint8Array(sub.options.applicationServerKey);
    const wanted = keyBytes(public_key);
    if (current.length !== wanted.length || current.some((b, i) => b !== wanted[i])) {
      await sub.unsubscribe(); // subscribed under another server key
      sub = null;
    }
  }
  sub ||= await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(public_key) });
  const label = navigator.userAgentData?.brands?.map((b) => b.brand).find((b) => !/Not.A.Brand/i.test(b)) || "Browser";
  const device = await api.post("/push/subscriptions", { web_push: sub.toJSON(), label });
  localStorage.setItem(DEVICE, device.id);
  return device;
}

/** Removes the device at the server, then forgets it here. */
export async function disable() {
  const id = deviceId();
  if (id) await api.del(`/push/subscriptions/${id}`).catch(() => {});
  await forget();
}

/** Unsubscribes this browser (on logout the server has removed the device already). */
export async function forget() {
  localStorage.removeItem(DEVICE);
  const reg = await navigator.serviceWorker?.getRegistration("/");
  const sub = await reg?.pushManager.getSubscription();
  if (sub) await sub.unsubscribe().catch(() => {});
}
