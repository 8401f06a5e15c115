// The wall's only script: follow the server-sent event stream, swap in the overview the
// server renders, and say plainly when the figures are stale or the connection is lost.
const config = JSON.parse(document.getElementById("wall-config").textContent);
const S = config.strings;
const statusBox = document.getElementById("status");
const overview = document.getElementById("overview");
const ICONS = { live: "●", degraded: "▲", stale: "⚠", lost: "✖", connecting: "…" };
// Three missed heartbeats: the connection is dead even if the browser has not noticed.
const LOST_AFTER_MS = 3 * config.heartbeat_s * 1000;
let lastMessageAt = Date.now();

function fill(template, values) {
  return template.replace(/\{(\w+)\}/g, (_, key) => String(values[key] ?? ""));
}

function setState(state, message) {
  document.body.dataset.state = state;
  statusBox.className = `status ${state}`;
  statusBox.querySelector(".dot").textContent = ICONS[state] ?? "●";
  const msg = statusBox.querySelector(".msg");
  if (msg.textContent !== message) msg.textContent = message;
}

function failedText(failed) {
  const names = failed.map((f) => `${f.url} (${f.error ?? "?"})`).join(", ");
  return fill(S.sources_failed, { sources: names });
}

function apply(data) {
  lastMessageAt = Date.now();
  if (typeof data.html === "string") {
    const scroller = overview.querySelector(".units .scroll");
    const scrollTop = scroller ? scroller.scrollTop : 0;
    overview.innerHTML = data.html;
    const again = overview.querySelector(".units .scroll");
    if (again) again.scrollTop = scrollTop;
  }
  statusBox.querySelector(".updated").textContent = fill(S.updated, { time: data.data_time_text });
  if (data.stale) {
    const since = data.data_time ? fill(S.stale, { time: data.data_time_text }) : S.stale_never;
    setState("stale", data.failed.length ? `${since} ${failedText(data.failed)}` : since);
  } else if (data.failed.length) {
    setState("degraded", failedText(data.failed));
  } else {
    setState("live", S.live);
  }
}

function connect() {
  const source = new EventSource(config.stream);
  for (const name of ["overview", "heartbeat"]) {
    source.addEventListener(name, (event) => apply(JSON.parse(event.data)));
  }
  // EventSource retries by itself (the server asks for 2 s); only CLOSED needs a new one.
  source.onerror = () => {
    setState("lost", S.lost);
    if (source.readyState === EventSource.CLOSED) setTimeout(connect, 2000);
  };
}

setInterval(() => {
  if (Date.now() - lastMessageAt > LOST_AFTER_MS) setState("lost", S.lost);
}, 1000);

connect();
