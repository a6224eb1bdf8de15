// The human agent's desk: presence, incoming handoffs (chime + briefing), accept, talk with the caller over
// WebRTC (microphone and speaker), live transcript, notes, complete with a disposition. Supervisors also see
// the whole queue, who is available and how long each caller has waited.
// Live updates come from GET /api/handoffs/events (server-sent events, the session cookie authenticates).
// Query option (in the hash): test=1 keeps the received audio for inspection (window.voxdeskDesk).
import { api } from "../api.js";
import { field, fmtTime, h, pill, replace } from "../dom.js";
import { keepReceived, pcmBase64, waitForIce } from "../received_audio.js";

const SPEAKERS = { caller: "Caller", agent: "Voice agent", human: "You", system: "System" };
const DISPOSITIONS = ["resolved", "follow_up", "escalated", "callback", "no_answer"];

function chime() {
  // Two soft notes made with WebAudio (no file to fetch).
  try {
    const ctx = new AudioContext();
    const now = ctx.currentTime;
    [[880, 0], [1318.5, 0.18]].forEach(([freq, at]) => {
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.frequency.value = freq;
      gain.gain.setValueAtTime(0.0001, now + at);
      gain.gain.exponentialRampToValueAtTime(0.2, now + at + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, now + at + 0.35);
      osc.connect(gain).connect(ctx.destination);
      osc.start(now + at);
      osc.stop(now + at + 0.4);
    });
    setTimeout(() => ctx.close(), 1000);
  } catch (error) {
    console.warn("chime failed", error);
  }
}

function waitSeconds(handoff) {
  const start = Date.parse(handoff.requested_at);
  const end = handoff.accepted_at ? Date.parse(handoff.accepted_at) : handoff.ended_at ? Date.parse(handoff.ended_at) : Date.now();
  return Math.max(0, Math.round((end - start) / 1000));
}

function briefingView(detail) {
  const b = detail.briefing || {};
  const caller = b.caller || {};
  const who = caller.name || caller.number || caller.email || "Unknown caller";
  const consent = b.consent ? (b.consent.recording ? "Recording agreed" : "Recording not agreed") : "No notice heard";
  return h("div", { class: "stack briefing", dataset: { handoff: detail.id } },
    h("p", {}, h("strong", { text: "Why: " }), b.reason || detail.reason || "—"),
    h("p", { class: "briefing-summary" }, h("strong", { text: "Summary: " }), b.summary || "—"),
    h("dl", { class: "facts" },
      h("dt", { text: "Caller" }), h("dd", { text: `${who} (${caller.channel || "?"})` }),
      h("dt", { text: "Consent" }), h("dd", { text: consent }),
      h("dt", { text: "Sentiment" }), h("dd", { text: b.sentiment === null || b.sentiment === undefined ? "—" : Number(b.sentiment).toFixed(2) }),
      h("dt", { text: "Passages used" }), h("dd", { text: (b.passages || []).join(", ") || "none" }),
      h("dt", { text: "Waiting" }), h("dd", { text: `${waitSeconds(detail)} s` })),
    h("details", {}, h("summary", { text: `Transcript so far (${(b.transcript || []).length} turns)` }),
      h("ol", { class: "transcript" }, (b.transcript || []).map((t) =>
        h("li", { class: `turn turn-${t.role === "caller" ? "caller" : "agent"}` },
          h("strong", { text: `${SPEAKERS[t.role] || t.role}: ` }), t.text)))));
}

export async function renderDesk(main, ctx) {
  const manager = ctx.can("handoffs:manage");
  const testMode = ctx.query.get("test") === "1";
  const state = { presence: "away", offers: new Map(), active: null, events: [], rxPcm: [], rxRate: 16000, transcript: [], audioUp: false };
  window.voxdeskDesk = state;
  let pc = null;
  let mic = null;
  let audioCtx = null;
  let source = null;
  const closers = [];

  const presenceText = h("strong", { id: "desk-presence", text: "away" });
  const goAvailable = h("button", { type: "button", class: "button primary", id: "desk-available", text: "Go available" });
  const goAway = h("button", { type: "button", class: "button secondary", id: "desk-away", text: "Go away" });
  const incoming = h("div", { id: "desk-incoming", class: "stack", "aria-live": "polite" });
  const activePanel = h("div", { id: "desk-active", class: "stack" }, h("p", { class: "muted", text: "No call yet." }));
  const queueBox = h("div", { id: "desk-queue" });
  const presenceBox = h("div", { id: "desk-agents" });

  // The one place the desk shows its presence: the words, and only the button that changes it is enabled.
  function showPresence(status) {
    state.presence = status;
    presenceText.textContent = status;
    goAvailable.disabled = status === "available";
    goAway.disabled = status === "away";
  }

  async function setPresence(status) {
    try {
      const row = await api.put("/api/agents/me/presence", { status });
      showPresence(row.status);
      if (status === "available") await refreshOffers();
    } catch (error) {
      ctx.showError(error);
    }
  }
  goAvailable.addEventListener("click", () => setPresence("available"));
  goAway.addEventListener("click", () => setPresence("away"));
  showPresence(state.presence);

  function renderIncoming() {
    const items = [...state.offers.values()].filter((d) => d.status === "queued");
    if (!items.length) {
      replace(incoming, h("p", { class: "muted", text: state.presence === "available" ? "Waiting for a caller…" : "Go available to receive calls." }));
      return;
    }
    replace(incoming, items.map((detail) => {
      const accept = h("button", { type: "button", class: "button primary desk-accept", text: "Accept" });
      const decline = h("button", { type: "button", class: "button secondary desk-decline", text: "Decline" });
      accept.addEventListener("click", () => acceptHandoff(detail.id));
      decline.addEventListener("click", async () => {
        try {
          await api.post(`/api/handoffs/${encodeURIComponent(detail.id)}/decline`, {});
          state.offers.delete(detail.id);
          renderIncoming();
        } catch (error) {
          ctx.showError(error);
        }
      });
      return h("article", { class: "panel desk-offer", dataset: { handoff: detail.id } },
        h("h3", { text: `Incoming call · priority ${detail.priority}` }), briefingView(detail),
        h("div", { class: "actions" }, accept, decline));
    }));
  }

  async function loadOffer(id, { ring }) {
    const detail = await api.get(`/api/handoffs/${encodeURIComponent(id)}`);
    const isNew = !state.offers.has(id);
    state.offers.set(id, detail);
    if (isNew && ring && detail.status === "queued") chime();
    renderIncoming();
  }

  async function refreshOffers() {
    const list = await api.get("/api/handoffs", { query: { status: "queued" } });
    for (const item of list.items) {
      if (item.offered_to.includes(ctx.user.id) && !state.offers.has(item.id)) await loadOffer(item.id, { ring: true });
    }
  }

  function recordReceived(stream) {
    // What the desk hears, kept in test mode (16 kHz samples) so a test can check it is the caller's speech.
    if (!audioCtx) audioCtx = new AudioContext();
    source = keepReceived(audioCtx, stream, state);
  }

  state.receivedPcm = () => pcmBase64(state.rxPcm);

  async function joinAudio(id) {
    mic = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: !testMode, noiseSuppression: !testMode, autoGainControl: !testMode },
    });
    pc = new RTCPeerConnection({ iceServers: [] });
    pc.addTransceiver(mic.getAudioTracks()[0], { direction: "sendrecv" });
    const speaker = activePanel.querySelector("audio");
    pc.ontrack = (e) => {
      if (e.track.kind !== "audio") return;
      const stream = new MediaStream([e.track]);
      if (speaker) speaker.srcObject = stream;
      if (testMode) recordReceived(stream);
    };
    pc.onconnectionstatechange = () => {
      state.connection = pc ? pc.connectionState : "closed";
      if (pc && pc.connectionState === "connected") {
        state.audioUp = true;
        state.audioUpAt = performance.now();
      }
    };
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    await waitForIce(pc);
    const answer = await api.post(`/api/handoffs/${encodeURIComponent(id)}/media`, { sdp: pc.localDescription.sdp, type: "offer" });
    await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
  }

  function hangUpAudio() {
    if (pc) pc.close();
    pc = null;
    if (mic) mic.getTracks().forEach((t) => t.stop());
    mic = null;
    if (source) source.disconnect();
    source = null;
  }

  function addLine(role, text) {
    state.transcript.push({ role, text });
    const list = activePanel.querySelector(".desk-transcript");
    if (list) list.append(h("li", { class: `turn turn-${role === "caller" ? "caller" : "agent"}`, dataset: { role } },
      h("strong", { text: `${SPEAKERS[role] || role}: ` }), text));
  }

  function renderActive(detail) {
    const speaker = h("audio", { autoplay: true, "aria-label": "Caller audio" });
    const muteMic = h("button", { type: "button", class: "button secondary", id: "desk-mute", text: "Mute microphone", "aria-pressed": "false" });
    const muteSpeaker = h("button", { type: "button", class: "button secondary", id: "desk-speaker", text: "Mute speaker", "aria-pressed": "false" });
    muteMic.addEventListener("click", () => {
      const track = mic && mic.getAudioTracks()[0];
      if (!track) return;
      track.enabled = !track.enabled;
      muteMic.setAttribute("aria-pressed", String(!track.enabled));
      muteMic.textContent = track.enabled ? "Mute microphone" : "Unmute microphone";
    });
    muteSpeaker.addEventListener("click", () => {
      speaker.muted = !speaker.muted;
      muteSpeaker.setAttribute("aria-pressed", String(speaker.muted));
      muteSpeaker.textContent = speaker.muted ? "Unmute speaker" : "Mute speaker";
    });
    const notes = h("textarea", { id: "desk-notes", name: "notes", rows: 4 });
    const disposition = h("select", { id: "desk-disposition", name: "disposition" },
      DISPOSITIONS.map((d) => h("option", { value: d, text: d.replace("_", " ") })));
    const complete = h("button", { type: "submit", class: "button primary", id: "desk-complete", text: "Complete" });
    const form = h("form", { class: "stack", "aria-label": "Wrap-up" }, field("Notes", notes), field("Disposition", disposition), h("div", {}, complete));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      complete.disabled = true;
      try {
        await api.post(`/api/handoffs/${encodeURIComponent(detail.id)}/complete`, { notes: notes.value, disposition: disposition.value });
        hangUpAudio();
        state.completed = detail.id;
        state.active = null;
        ctx.notify("Call completed.", "success");
        replace(activePanel, h("p", { class: "muted", text: "Call completed. You are available again." }));
        showPresence("available");
      } catch (error) {
        ctx.showError(error);
        complete.disabled = false;
      }
    });
    replace(activePanel,
      h("h3", { text: "On a call" }), briefingView(detail),
      h("div", { class: "actions" }, muteMic, muteSpeaker), speaker,
      h("h4", { text: "Live transcript" }), h("ol", { class: "transcript desk-transcript", "aria-live": "polite" }),
      form);
  }

  async function acceptHandoff(id) {
    try {
      const detail = await api.post(`/api/handoffs/${encodeURIComponent(id)}/accept`, {});
      state.offers.delete(id);
      renderIncoming();
      state.active = detail;
      showPresence("busy");
      renderActive(detail);
      state.acceptClickedAt = performance.now();
      await joinAudio(id);
    } catch (error) {
      ctx.showError(error);
    }
  }

  async function refreshSupervisor() {
    if (!manager) return;
    const [queue, agents] = await Promise.all([api.get("/api/handoffs", { query: { limit: 50 } }), api.get("/api/agents/presence")]);
    const open = queue.items.filter((i) => ["queued", "accepted"].includes(i.status));
    replace(queueBox, open.length
      ? h("table", { class: "table" }, h("thead", {}, h("tr", {}, ["Status", "Reason", "Priority", "Waiting", "Agent"].map((t) => h("th", { text: t })))),
        h("tbody", {}, open.map((i) => h("tr", { dataset: { handoff: i.id } },
          h("td", {}, pill(i.status)), h("td", { text: i.reason || "—" }), h("td", { text: String(i.priority) }),
          h("td", { class: "desk-wait", dataset: { requested: i.requested_at, accepted: i.accepted_at || "" }, text: `${waitSeconds(i)} s` }),
          h("td", { text: i.agent_user_id ? i.agent_user_id.slice(0, 8) : "—" })))))
      : h("p", { class: "muted", text: "Nobody is waiting." }));
    replace(presenceBox, agents.items.length
      ? h("ul", { class: "plain" }, agents.items.map((a) => h("li", { dataset: { user: a.user_id } }, pill(a.status), ` ${a.full_name || a.email}`)))
      : h("p", { class: "muted", text: "No agent has signed in to the desk yet." }));
  }

  // Waiting times tick on the supervisor's view.
  const ticker = setInterval(() => {
    for (const cell of queueBox.querySelectorAll(".desk-wait")) {
      if (cell.dataset.accepted) continue;
      cell.textContent = `${Math.max(0, Math.round((Date.now() - Date.parse(cell.dataset.requested)) / 1000))} s`;
    }
  }, 1000);
  closers.push(() => clearInterval(ticker));

  const events = new EventSource("/api/handoffs/events");
  state.feed = "connecting";
  events.onopen = () => { state.feed = "open"; };
  events.onerror = () => { state.feed = "error"; };
  events.onmessage = async (message) => {
    let event;
    try { event = JSON.parse(message.data); } catch { return; }
    state.events.push(event);
    try {
      if (event.type === "handoff") {
        if (event.status === "queued" && event.offered_to.includes(ctx.user.id) && state.presence === "available") {
          await loadOffer(event.id, { ring: true });
        } else if (event.status !== "queued" && state.offers.has(event.id)) {
          state.offers.delete(event.id); // taken by someone else, timed out or abandoned: no longer offered
          renderIncoming();
        }
        await refreshSupervisor();
      } else if (event.type === "presence") {
        await refreshSupervisor();
      } else if (event.type === "transcript" && state.active && event.handoff_id === state.active.id) {
        addLine(event.role, event.text);
      } else if (event.type === "call_ended" && state.active && event.handoff_id === state.active.id) {
        state.callerLeft = true;
        hangUpAudio();
        ctx.notify("The caller hung up. Add your notes and complete.", "info");
      }
    } catch (error) {
      ctx.showError(error);
    }
  };
  closers.push(() => events.close());
  closers.push(hangUpAudio);

  replace(main,
    h("div", { class: "page-head" }, h("h1", { text: "Desk" }), h("p", {}, "You are ", presenceText, ".")),
    h("div", { class: "actions" }, goAvailable, goAway),
    h("div", { class: "detail-grid" },
      h("div", { class: "detail-main" },
        h("section", { class: "panel", "aria-labelledby": "desk-incoming-title" }, h("h2", { id: "desk-incoming-title", text: "Incoming" }), incoming),
        h("section", { class: "panel", "aria-labelledby": "desk-active-title" }, h("h2", { id: "desk-active-title", text: "Current call" }), activePanel)),
      manager ? h("aside", { class: "detail-side" },
        h("section", { class: "panel", "aria-labelledby": "desk-queue-title" }, h("h2", { id: "desk-queue-title", text: "Queue" }), queueBox),
        h("section", { class: "panel", "aria-labelledby": "desk-agents-title" }, h("h2", { id: "desk-agents-title", text: "Agents" }), presenceBox)) : null));
  renderIncoming();
  await refreshSupervisor();
  return () => closers.forEach((close) => close());
}
