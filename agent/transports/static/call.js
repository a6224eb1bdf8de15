// Voxdesk caller page: one WebRTC call to the help desk over pipecat's SmallWebRTC transport.
// No CDN, no framework. Query options: key=<embed key>; test=1 (no echo cancellation / noise
// suppression / gain control, received audio kept for inspection, extra caller clips can be played).
"use strict";

(function () {
  const params = new URLSearchParams(window.location.search);
  const testMode = params.get("test") === "1";
  const embedKey = params.get("key");
  const $ = (id) => document.getElementById(id);
  const ui = {
    call: $("call"), hangup: $("hangup"), status: $("status"),
    transcript: $("transcript"), interim: $("interim"), audio: $("agent-audio"),
  };

  // State visible to tests and to embedding pages.
  const state = {
    status: "idle", callId: null, events: [], turns: [], latencies: [],
    rx: [], rxRate: 16000, rxPcm: [], ended: null,
  };
  window.voxdeskCall = state;

  // The audio helpers shared with the console's desk (served by the console, same origin).
  const shared = import("/console/static/received_audio.js");
  let audio = null;
  shared.then((m) => { audio = m; });

  let pendingLatency = null;
  let pc = null, dc = null, pingTimer = null, micStream = null, audioCtx = null, mixDest = null;

  function setStatus(text, status) {
    ui.status.textContent = text;
    if (status) state.status = status;
  }

  function addTurn(event) {
    const li = document.createElement("li");
    li.className = event.role + (event.interrupted ? " interrupted" : "");
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = event.role === "caller" ? "You" : "Agent";
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = event.text;
    li.append(who, text);
    if (event.role === "agent" && pendingLatency) {
      const tag = document.createElement("span");
      tag.className = "latency";
      tag.textContent = Math.round(pendingLatency.total_ms) + " ms";
      tag.title = "On the server, your last word received to the answer's first sound sent (the network and " +
        "your browser add to it): " + ["vad_ms", "asr_ms", "retrieval_ms", "llm_ms", "tts_ms"]
        .filter((k) => pendingLatency[k] != null)
        .map((k) => k.replace("_ms", "") + " " + Math.round(pendingLatency[k]) + " ms")
        .join(", ");
      li.append(tag);
      pendingLatency = null;
    }
    ui.transcript.append(li);
    state.turns.push(event);
    return li;
  }

  function onEvent(event) {
    state.events.push(Object.assign({ t: performance.now() }, event));
    switch (event.type) {
      case "call":
        state.callId = event.call_id;
        break;
      case "transcript":
        if (event.final) {
          ui.interim.textContent = "";
          addTurn(event);
        } else {
          ui.interim.textContent = (event.role === "caller" ? "You: " : "Agent: ") + event.text;
        }
        break;
      case "latency":
        // Measured when the answer starts playing; shown on that answer once its text is final.
        state.latencies.push(event);
        pendingLatency = event;
        break;
      case "end":
        state.ended = event.reason;
        finish("Call ended (" + event.reason.replace(/_/g, " ") + ")");
        break;
      default:
        break;
    }
  }

  function recordReceived(stream) {
    // Keep the agent's audio as 16 kHz samples and a 20 ms energy envelope (tests compare them).
    if (!audioCtx) audioCtx = new AudioContext();
    shared.then((m) => m.keepReceived(audioCtx, stream, state, { pcm: testMode, envelope: true }));
  }

  // Test hook: speak an extra clip (base64 WAV) into the call on top of the microphone.
  state.play = async function (base64Wav) {
    if (!mixDest) throw new Error("not in test mode or not connected");
    const bytes = Uint8Array.from(atob(base64Wav), (c) => c.charCodeAt(0));
    const buffer = await audioCtx.decodeAudioData(bytes.buffer);
    const src = audioCtx.createBufferSource();
    src.buffer = buffer;
    src.connect(mixDest);
    const startedAt = performance.now();
    src.start();
    return startedAt;
  };

  // Test hook: the received audio as base64 little-endian 16-bit PCM at state.rxRate.
  state.receivedPcm = () => (audio ? audio.pcmBase64(state.rxPcm) : "");

  async function start() {
    ui.call.disabled = true;
    setStatus("Asking for your microphone…", "starting");
    try {
      micStream = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: !testMode, noiseSuppression: !testMode, autoGainControl: !testMode },
      });
    } catch (err) {
      setStatus("Microphone permission is needed to call.", "failed");
      ui.call.disabled = false;
      return;
    }
    let micTrack = micStream.getAudioTracks()[0];
    if (testMode) {
      audioCtx = new AudioContext();
      mixDest = audioCtx.createMediaStreamDestination();
      audioCtx.createMediaStreamSource(micStream).connect(mixDest);
      micTrack = mixDest.stream.getAudioTracks()[0];
    }
    setStatus("Connecting…", "connecting");
    pc = new RTCPeerConnection({ iceServers: [] });
    // pipecat maps transceiver 0 to audio and 1 to video.
    pc.addTransceiver(micTrack, { direction: "sendrecv" });
    pc.addTransceiver("video", { direction: "sendrecv" });
    dc = pc.createDataChannel("voxdesk");
    dc.onopen = () => {
      pingTimer = setInterval(() => { if (dc.readyState === "open") dc.send("ping: " + Date.now()); }, 1000);
    };
    dc.onmessage = (msg) => {
      try { onEvent(JSON.parse(msg.data)); } catch (e) { /* not ours */ }
    };
    pc.ontrack = (e) => {
      if (e.track.kind !== "audio") return;
      const stream = new MediaStream([e.track]);
      ui.audio.srcObject = stream;
      recordReceived(stream);
    };
    pc.onconnectionstatechange = () => {
      if (pc && pc.connectionState === "connected") setStatus("Connected", "connected");
      if (pc && (pc.connectionState === "failed" || pc.connectionState === "closed")) finish("Disconnected");
    };
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    await (await shared).waitForIce(pc);
    const body = { sdp: pc.localDescription.sdp, type: pc.localDescription.type };
    if (embedKey) body.embed_key = embedKey;
    let response;
    try {
      response = await fetch("/api/voice/webrtc/offer", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
      });
    } catch (err) {
      finish("The help desk could not be reached.");
      return;
    }
    if (!response.ok) {
      let detail = "The call could not be placed.";
      try { detail = (await response.json()).detail || detail; } catch (e) { /* keep default */ }
      finish(detail);
      state.status = "refused";
      return;
    }
    const answer = await response.json();
    state.callId = answer.call_id;
    await pc.setRemoteDescription({ sdp: answer.sdp, type: answer.type });
    ui.hangup.disabled = false;
  }

  function finish(text) {
    if (pingTimer) clearInterval(pingTimer);
    pingTimer = null;
    if (pc) { try { pc.close(); } catch (e) { /* already closed */ } }
    pc = null;
    if (micStream) micStream.getTracks().forEach((t) => t.stop());
    micStream = null;
    ui.hangup.disabled = true;
    ui.call.disabled = false;
    setStatus(text, "ended");
  }

  function hangup() {
    if (dc && dc.readyState === "open") dc.send(JSON.stringify({ type: "hangup" }));
    // Give the hangup message a moment to leave before the connection closes.
    setTimeout(() => finish("Call ended"), 200);
  }

  ui.call.addEventListener("click", start);
  ui.hangup.addEventListener("click", hangup);
})();
