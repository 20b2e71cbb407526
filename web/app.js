// The demo page: shows who is logged in (GET /me), logs in (POST /login) and out (POST /logout),
// lists where the user is logged in (GET /sessions) and ends any of those (DELETE /sessions/{id}),
// changes the password (POST /me/password), deletes the account (DELETE /me), and signs up
// (POST /signup) when the server offers it (GET /signup answers 204).
// The session cookie is HttpOnly: this script never sees it, the browser sends it.
"use strict";

const $ = (id) => document.getElementById(id);

// What to tell the user for each status the API answers with.
const messages = {
  401: "Wrong email or password.",
  403: "Wrong password.",
  429: "Too many attempts. Wait a little and try again.",
  503: "The service is unavailable right now. Try again shortly.",
};

function say(text) {
  $("message").textContent = text;
  $("message").hidden = !text;
}

let signupOn = false;

function show(user) {
  $("login").hidden = Boolean(user);
  $("signup").hidden = Boolean(user) || !signupOn;
  $("account").hidden = !user;
  $("user").textContent = user ? user.email : "";
  $("sessions").replaceChildren();
  if (user) listSessions();
}

// listSessions fills the list of the user's sessions, each with a button that ends it. Every
// text goes in through textContent: a user agent is whatever the client sent.
async function listSessions() {
  try {
    const resp = await fetch("/sessions", { headers: { Accept: "application/json" } });
    if (resp.status === 401) return show(null);
    if (!resp.ok) return say(await failure(resp));
    const items = (await resp.json()).map((s) => {
      const li = document.createElement("li");
      li.dataset.current = String(s.current);
      const what = document.createElement("span");
      what.textContent = (s.user_agent || "unknown browser") + (s.current ? " (this one)" : "");
      const when = document.createElement("small");
      when.textContent = `from ${s.address || "?"}, last used ${new Date(s.last_used).toLocaleString()}`;
      what.append(when);
      const end = document.createElement("button");
      end.type = "button";
      end.textContent = "End";
      end.addEventListener("click", () => endSession(s));
      li.append(what, end);
      return li;
    });
    $("sessions").replaceChildren(...items);
  } catch {
    say("Cannot reach the server.");
  }
}

async function endSession(s) {
  say("");
  try {
    const resp = await fetch(`/sessions/${encodeURIComponent(s.id)}`, { method: "DELETE" });
    if (!resp.ok && resp.status !== 404) return say(await failure(resp));
    if (s.current) return show(null); // ending this one is logging out
    listSessions();
  } catch {
    say("Cannot reach the server.");
  }
}

async function failure(resp) {
  if (messages[resp.status]) return messages[resp.status];
  const body = await resp.json().catch(() => ({}));
  return body.error ? `Error ${resp.status}: ${body.error}` : `Error ${resp.status}.`;
}

async function refresh() {
  try {
    const resp = await fetch("/me", { headers: { Accept: "application/json" } });
    if (resp.ok) return show(await resp.json());
    show(null);
    if (resp.status !== 401) say(await failure(resp)); // 401 here only means "not logged in"
  } catch {
    show(null);
    say("Cannot reach the server.");
  }
}

$("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  say("");
  try {
    const resp = await fetch("/login", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ email: $("email").value, password: $("password").value }),
    });
    if (!resp.ok) return say(await failure(resp));
    $("password").value = "";
    show(await resp.json());
  } catch {
    say("Cannot reach the server.");
  }
});

$("logout").addEventListener("click", async () => {
  say("");
  try {
    const resp = await fetch("/logout", { method: "POST" });
    if (!resp.ok && resp.status !== 401) return say(await failure(resp));
    show(null);
  } catch {
    say("Cannot reach the server.");
  }
});

// send sends body as JSON with method to path and returns the response.
function send(method, path, body) {
  return fetch(path, {
    method,
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify(body),
  });
}

$("signup").addEventListener("submit", async (event) => {
  event.preventDefault();
  say("");
  try {
    const resp = await send("POST", "/signup", { email: $("signup-email").value, password: $("signup-password").value });
    if (resp.status === 409) return say("That email already has an account: log in instead.");
    if (!resp.ok) return say(await failure(resp));
    $("signup-password").value = "";
    show(await resp.json());
  } catch {
    say("Cannot reach the server.");
  }
});

$("change-password").addEventListener("submit", async (event) => {
  event.preventDefault();
  say("");
  try {
    const resp = await send("POST", "/me/password", {
      current_password: $("current-password").value,
      new_password: $("new-password").value,
    });
    if (resp.status === 401) return show(null);
    if (!resp.ok) return say(await failure(resp));
    $("current-password").value = "";
    $("new-password").value = "";
    say("Password changed. Every other session has ended.");
    listSessions();
  } catch {
    say("Cannot reach the server.");
  }
});

$("delete-account").addEventListener("submit", async (event) => {
  event.preventDefault();
  say("");
  try {
    const resp = await send("DELETE", "/me", { password: $("delete-password").value });
    if (resp.status === 401) return show(null);
    if (!resp.ok) return say(await failure(resp));
    $("delete-password").value = "";
    show(null);
    say("Your account is deleted.");
  } catch {
    say("Cannot reach the server.");
  }
});

async function start() {
  try {
    signupOn = (await fetch("/signup")).status === 204;
  } catch {
    signupOn = false;
  }
  refresh();
}

start();
