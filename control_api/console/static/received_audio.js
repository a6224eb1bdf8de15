// What a WebRTC page receives, kept for inspection, and its ICE gathering: shared by the caller page
// (agent/transports/static/call.js, which loads this file from /console/static/ with a dynamic import) and the
// human agent's desk (views/desk.js). No DOM, no globals: each page passes its own AudioContext and state.

// Keep a received stream as 16 kHz samples (state.rxPcm, state.rxRate) and, when envelope is set, its 20 ms-ish
// energy envelope (state.rx: {t, rms}). The audio goes through a muted branch: the page's <audio> plays it.
// Returns the source node (disconnect it to stop).
export function keepReceived(audioCtx, stream, state, { pcm = true, envelope = false } = {}) {
  const source = audioCtx.createMediaStreamSource(stream);
  const node = audioCtx.createScriptProcessor(1024, 1, 1);
  const step = Math.max(1, Math.round(audioCtx.sampleRate / 16000));
  state.rxRate = audioCtx.sampleRate / step;
  node.onaudioprocess = (e) => {
    const data = e.inputBuffer.getChannelData(0);
    if (envelope) {
      let sum = 0;
      for (let i = 0; i < data.length; i++) sum += data[i] * data[i];
      state.rx.push({ t: performance.now(), rms: Math.sqrt(sum / data.length) });
    }
    if (pcm) {
      const out = new Float32Array(Math.ceil(data.length / step));
      for (let i = 0, j = 0; i < data.length; i += step, j++) out[j] = data[i];
      state.rxPcm.push(out);
    }
  };
  const sink = audioCtx.createGain();
  sink.gain.value = 0;
  source.connect(node);
  node.connect(sink);
  sink.connect(audioCtx.destination);
  return source;
}

// The kept samples (Float32Array chunks) as base64 little-endian 16-bit PCM (the tests' hook).
export function pcmBase64(chunks) {
  const total = chunks.reduce((n, a) => n + a.length, 0);
  const pcm = new Int16Array(total);
  let o = 0;
  for (const chunk of chunks) {
    for (let i = 0; i < chunk.length; i++) pcm[o++] = Math.max(-32768, Math.min(32767, chunk[i] * 32767));
  }
  let binary = "";
  const view = new Uint8Array(pcm.buffer);
  for (let i = 0; i < view.length; i += 0x8000) binary += String.fromCharCode.apply(null, view.subarray(i, i + 0x8000));
  return btoa(binary);
}

// Wait until the peer has gathered its candidates (non-trickle offers); host candidates are enough on a LAN:
// never longer than timeoutMs.
export async function waitForIce(peer, timeoutMs = 3000) {
  if (peer.iceGatheringState === "complete") return;
  await new Promise((resolve) => {
    const check = () => {
      if (peer.iceGatheringState === "complete") {
        peer.removeEventListener("icegatheringstatechange", check);
        resolve();
      }
    };
    peer.addEventListener("icegatheringstatechange", check);
    setTimeout(resolve, timeoutMs);
  });
}
