// Settings: the persona (with its versions, a diff and roll-back), the pipeline backends and their health,
// rate limits and retention, privacy requests and incidents. Each section shows what the role may see; edit
// controls appear only with the permission, and the server refuses the action anyway.
import { api, ApiError } from "../api.js";
import { cardTable, codePill, field, fmtDateTime, h, label, labelOptions, pill, replace, select } from "../dom.js";

const PERSONA_FIELDS = [
  ["display_name", "Name the agent gives", "input"],
  ["greeting", "Greeting", "textarea"],
  ["consent_notice", "Recording notice", "textarea"],
  ["voice", "Voice", "input"],
  ["language", "Language", "input"],
  ["instructions", "Instructions (for LLM brains)", "textarea"],
];
const STAGES = {
  vad: "Turn detection", asr: "Speech recognition", asr_second_opinion: "Second opinion on recognition",
  brain: "Answering", tts: "Voice", embedder: "Knowledge embeddings", vector_store: "Knowledge index",
};
const PERIODS = { minute: "a minute", hour: "an hour", day: "a day", second: "a second" };

/** "100/minute" -> "100 a minute"; "5/15minutes" -> "5 per 15 minutes". */
export function rateWords(limit) {
  const match = /^(\d+)\s*\/\s*(\d*)\s*([a-z]+?)s?$/.exec(String(limit).trim());
  if (!match) return String(limit);
  const [, count, every, unit] = match;
  return every && every !== "1" ? `${count} per ${every} ${unit}s` : `${count} ${PERIODS[unit] || `per ${unit}`}`;
}

/** A line diff (longest common subsequence): [kind, line] with kind " ", "-" (only in a) or "+" (only in b). */
export function lineDiff(a, b) {
  const x = String(a || "").split("\n");
  const y = String(b || "").split("\n");
  const table = Array.from({ length: x.length + 1 }, () => new Array(y.length + 1).fill(0));
  for (let i = x.length - 1; i >= 0; i -= 1) {
    for (let j = y.length - 1; j >= 0; j -= 1) {
      table[i][j] = x[i] === y[j] ? table[i + 1][j + 1] + 1 : Math.max(table[i + 1][j], table[i][j + 1]);
    }
  }
  const out = [];
  let i = 0;
  let j = 0;
  while (i < x.length && j < y.length) {
    if (x[i] === y[j]) {
      out.push([" ", x[i]]);
      i += 1;
      j += 1;
    } else if (table[i + 1][j] >= table[i][j + 1]) {
      out.push(["-", x[i]]);
      i += 1;
    } else {
      out.push(["+", y[j]]);
      j += 1;
    }
  }
  while (i < x.length) out.push(["-", x[i++]]);
  while (j < y.length) out.push(["+", y[j++]]);
  return out;
}

function section(id, title, ...children) {
  return h("section", { class: "panel", "aria-labelledby": `${id}-title`, dataset: { section: id } },
    h("h2", { id: `${id}-title`, text: title }), ...children);
}

function diffView(older, newer) {
  const changed = PERSONA_FIELDS.filter(([key]) => (older[key] || "") !== (newer[key] || ""));
  if (!changed.length) return h("p", { class: "muted", text: "No difference." });
  return h("div", { class: "diff" }, changed.map(([key, name]) => h("div", {},
    h("h3", { text: name }),
    h("pre", { class: "diff-lines", "aria-label": `Changes to ${name}` }, lineDiff(older[key], newer[key]).map(([kind, line]) =>
      h("span", { class: kind === "+" ? "diff-add" : kind === "-" ? "diff-del" : "diff-same", text: `${kind} ${line}\n` }))))));
}

async function personaSection(ctx) {
  const mayEdit = ctx.can("personas:manage");
  const body = h("div");
  const wrapper = section("persona", "Persona", body);
  const list = (await api.get("/api/personas")) || {};
  const personas = list.items || [];
  if (!personas.length) {
    replace(body, h("p", { class: "empty", text: "No persona yet: the agent uses its built-in greeting." }));
    return wrapper;
  }
  let current = personas.find((p) => p.name === "default") || personas[0];
  const chooser = personas.length > 1
    ? select({ name: "persona", "aria-label": "Persona" }, personas.map((p) => [p.name, p.display_name ? `${p.display_name} (${p.name})` : p.name]), current.name)
    : null;
  const form = h("form", { class: "stack", "aria-label": "Persona" });
  const controls = {};
  const versions = h("div");

  // The voices the installed engine really has (persona editors only; null: no voice engine runs here).
  let voices = null;
  if (mayEdit) {
    try {
      voices = await api.get("/api/personas/preview-voice");
    } catch (error) {
      voices = null;
    }
  }

  async function fill() {
    controls.fields = PERSONA_FIELDS.map(([key, name, kind]) => {
      if (key === "voice" && voices) return voiceField(name);
      const control = kind === "textarea"
        ? h("textarea", { name: key, rows: key === "instructions" ? 5 : 3, disabled: !mayEdit, maxlength: key === "instructions" ? 20000 : 2000 })
        : h("input", { type: "text", name: key, disabled: !mayEdit, maxlength: 100 });
      control.value = current[key] || "";
      controls[key] = control;
      const hint = key === "voice" ? (mayEdit ? "No voice engine is running in this server, so there is no list to choose from or preview." : undefined) : undefined;
      return field(name, control, hint);
    });
    const save = mayEdit ? h("button", { type: "submit", class: "button primary", text: "Save as a new version" }) : null;
    replace(form,
      h("p", { class: "muted small", text: `Version ${current.version} · active since ${fmtDateTime(current.created_at)}` }),
      controls.fields,
      mayEdit ? h("div", {}, save) : h("p", { class: "muted small", text: "Your role can read the persona but not change it." }));
    if (mayEdit) await fillVersions();
  }

  /** The voice chooser: the engine's installed voices, and a button that speaks the greeting in the chosen one. */
  function voiceField(name) {
    const engineDefault = voices.default ? `Default (${voices.default})` : `The ${voices.engine} default`;
    const options = [["", engineDefault], ...voices.voices.map((v) => [v, v])];
    if (current.voice && !voices.voices.includes(current.voice)) options.push([current.voice, `${current.voice} (not installed: the default is used)`]);
    const control = select({ name: "voice" }, options, current.voice || "");
    controls.voice = control;
    const play = h("button", { type: "button", class: "button secondary small", text: "Play preview" });
    const player = h("audio", { controls: true, class: "voice-player", "aria-label": "Preview audio", hidden: true });
    let url = null;
    play.addEventListener("click", async () => {
      const text = (controls.greeting.value || "").trim().slice(0, 300) || "Hello, thanks for calling.";
      play.disabled = true;
      play.textContent = "Speaking…";
      try {
        const audio = await api.post("/api/personas/preview-voice", { voice: control.value || null, text }, { blob: true });
        if (url) URL.revokeObjectURL(url);
        url = URL.createObjectURL(audio);
        player.src = url;
        player.hidden = false;
        player.dataset.ready = "true";
        await player.play().catch(() => undefined); // a browser may refuse autoplay: the controls stay
      } catch (error) {
        ctx.showError(error);
      } finally {
        play.disabled = false;
        play.textContent = "Play preview";
      }
    });
    const hint = `The voices the ${voices.engine} voice engine has installed. Play preview speaks the greeting above (its first 300 characters) as callers will hear it.`;
    const wrapper = field(name, control, hint);
    const row = h("div", { class: "voice-row" });
    control.replaceWith(row);
    row.append(control, play, player);
    return wrapper;
  }

  async function fillVersions() {
    let answer;
    try {
      answer = await api.get(`/api/personas/${encodeURIComponent(current.name)}/versions`);
    } catch (error) {
      replace(versions, h("p", { class: "error-text", text: error.message }));
      return;
    }
    const rows = (answer && answer.items) || [];
    const detail = h("div", { class: "version-diff", "aria-live": "polite" });
    const table = cardTable(h("table", { class: "table compact" },
      h("thead", {}, h("tr", {}, ["Version", "Saved", "State", ""].map((t) => h("th", { scope: "col", text: t })))),
      h("tbody", {}, rows.map((version) => {
        const compare = h("button", { type: "button", class: "button secondary small", text: "Compare", "aria-label": `Compare version ${version.version} with the active one` });
        compare.addEventListener("click", () => replace(detail,
          h("h3", { text: `Version ${version.version} → active version ${current.version}` }), diffView(version, current)));
        const restore = version.is_active ? null : h("button", { type: "button", class: "button secondary small", text: "Roll back to this", "aria-label": `Roll back to version ${version.version}` });
        restore?.addEventListener("click", async () => {
          if (!window.confirm(`Make version ${version.version}'s wording active again (saved as a new version)?`)) return;
          restore.disabled = true;
          try {
            const changes = Object.fromEntries(PERSONA_FIELDS.map(([key]) => [key, version[key]]).filter(([key, value]) => key === "voice" || value));
            current = await api.put(`/api/personas/${encodeURIComponent(current.name)}`, changes);
            await fill();  // the message once the page shows it: a click before then would land on the old table
            ctx.notify(`Version ${version.version} restored as version ${current.version}.`, "success");
          } catch (error) {
            ctx.showError(error);
            restore.disabled = false;
          }
        });
        return h("tr", { dataset: { version: version.version } },
          h("td", { text: `v${version.version}` }), h("td", { text: fmtDateTime(version.created_at) }),
          h("td", {}, version.is_active ? pill("active", "good", "Active") : pill("old", "neutral", "Earlier")),
          h("td", {}, h("div", { class: "row-actions" }, compare, restore)));
      }))));
    replace(versions, h("h3", { text: "Versions" }), h("div", { class: "table-wrap" }, table), detail);
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const changes = {};
    for (const [key] of PERSONA_FIELDS) {
      const value = controls[key].value;
      if (value !== (current[key] || "")) changes[key] = key === "voice" && !value.trim() ? null : value;
    }
    if (!Object.keys(changes).length) {
      ctx.notify("Nothing changed.");
      return;
    }
    try {
      current = await api.put(`/api/personas/${encodeURIComponent(current.name)}`, changes);
      await fill();
      ctx.notify(`Saved as version ${current.version}.`, "success");
    } catch (error) {
      ctx.showError(error);
    }
  });
  chooser?.addEventListener("change", async () => {
    current = personas.find((p) => p.name === chooser.value) || current;
    await fill();
  });
  replace(body, chooser ? field("Persona", chooser) : null, form, versions);
  await fill();
  return wrapper;
}

async function backendsSection(ctx) {
  const [config, health] = await Promise.all([
    api.get("/api/system/configuration"),
    fetch("/health/ready", { headers: { Accept: "application/json" }, cache: "no-store" }).then((r) => r.json()).catch(() => null),
  ]);
  const checks = (health && health.checks) || [];
  const checkRows = checks.map((check) => h("tr", {},
    h("td", { text: label("check", check.name.split(":")[0]) + (check.name.includes(":") ? ` (${check.name.split(":")[1]})` : "") }),
    h("td", {}, check.ok ? pill("ok", "good", "Working") : pill("down", "bad", "Not answering")),
    h("td", { class: "small", text: check.detail || `${Math.round(check.duration_ms)} ms` })));
  const backendRows = config.backends.map((backend) => h("tr", {},
    h("td", { text: STAGES[backend.stage] || label("stage", backend.stage) }),
    h("td", { text: backend.backend }), h("td", { class: "small", text: backend.detail || "—" })));
  const limits = config.rate_limits;
  const keep = config.retention;
  return [
    section("backends", "Voice pipeline and knowledge base",
      h("div", { class: "table-wrap" }, cardTable(h("table", { class: "table compact" },
        h("thead", {}, h("tr", {}, ["Stage", "In use", "Model or voice"].map((t) => h("th", { scope: "col", text: t })))),
        h("tbody", {}, backendRows)))),
      h("h3", { text: health ? `Health: ${health.status === "ready" ? "everything is working" : "something is not working"}` : "Health: unknown" }),
      h("div", { class: "table-wrap" }, cardTable(h("table", { class: "table compact" },
        h("thead", {}, h("tr", {}, ["Check", "State", "Detail"].map((t) => h("th", { scope: "col", text: t })))),
        h("tbody", {}, checkRows)))),
      h("p", { class: "muted small", text: `A question is answered only when its best passage scores at least ${config.knowledge_score_threshold}; typed tests and calls use the same threshold. Backends are chosen in the server's settings (docs/configuration.md).` })),
    section("limits", "Rate limits and retention",
      h("dl", { class: "facts" },
        h("dt", { text: "API requests" }), h("dd", { text: `${rateWords(limits.api)} per user` }),
        h("dt", { text: "Sign-in attempts" }), h("dd", { text: `${rateWords(limits.login)} per account and address` }),
        h("dt", { text: "Calls started" }), h("dd", { text: `${rateWords(limits.voice)} per user or caller address` }),
        limits.voice_preview ? [h("dt", { text: "Voice previews" }), h("dd", { text: `${rateWords(limits.voice_preview)} per user` })] : null,
        h("dt", { text: "Recordings kept" }), h("dd", { text: keep.recordings_days ? `${keep.recordings_days} days` : "Until deleted" }),
        h("dt", { text: "Transcripts kept" }), h("dd", { text: keep.transcripts_days ? `${keep.transcripts_days} days` : "Until deleted" }),
        h("dt", { text: "Personal data in transcripts" }), h("dd", { text: keep.redact_pii ? "Redacted before storage" : "Stored as said" })),
      h("p", { class: "muted small", text: "Set in the server's settings; a change takes effect on restart." })),
  ];
}

async function privacySection(ctx) {
  const tbody = h("tbody");
  async function load() {
    const answer = await api.get("/api/privacy/requests", { query: { limit: 50 } });
    const rows = (answer && (answer.data || answer.items)) || [];
    replace(tbody, rows.length ? rows.map((request) => {
      const actions = h("div", { class: "row-actions" });
      if (request.status === "received") {
        const run = h("button", { type: "button", class: "button primary small", text: request.kind === "erasure" ? "Erase now" : "Carry out", "aria-label": `Carry out the ${label("privacy_kind", request.kind).toLowerCase()} request for ${request.subject_email || request.subject_phone}` });
        const reject = h("button", { type: "button", class: "button secondary small", text: "Reject", "aria-label": `Reject the request for ${request.subject_email || request.subject_phone}` });
        run.addEventListener("click", async () => {
          if (request.kind === "erasure" && !window.confirm("Erase this person's calls, transcripts and recordings? This cannot be undone.")) return;
          run.disabled = true;
          try {
            await api.post(`/api/privacy/requests/${encodeURIComponent(request.id)}/execute`);
            ctx.notify("Request carried out.", "success");
            await load();
          } catch (error) {
            ctx.showError(error);
            run.disabled = false;
          }
        });
        reject.addEventListener("click", async () => {
          reject.disabled = true;
          try {
            await api.post(`/api/privacy/requests/${encodeURIComponent(request.id)}/reject`, { reason: "Identity not verified" });
            await load();
          } catch (error) {
            ctx.showError(error);
            reject.disabled = false;
          }
        });
        actions.append(run, reject);
      } else if (request.kind === "export" && request.status === "completed") {
        actions.append(h("a", { class: "button secondary small", href: `/api/privacy/requests/${encodeURIComponent(request.id)}`, download: `export-${request.id}.json`, text: "Download export" }));
      }
      return h("tr", { dataset: { requestId: request.id } },
        h("td", { text: label("privacy_kind", request.kind) }),
        h("td", { text: request.subject_email || request.subject_phone || "—" }),
        h("td", {}, codePill("privacy_status", request.status, request.status === "completed" ? "good" : request.status === "rejected" ? "bad" : "warn")),
        h("td", { text: fmtDateTime(request.created_at) }), h("td", {}, actions));
    }) : h("tr", {}, h("td", { colspan: 5, class: "empty", text: "No requests." })));
  }
  const kind = select({ name: "kind" }, labelOptions("privacy_kind", ["export", "correction", "erasure"]), "export");
  const email = h("input", { type: "email", name: "subject_email", autocomplete: "off" });
  const phone = h("input", { type: "tel", name: "subject_phone", autocomplete: "off", placeholder: "+44…" });
  const newName = h("input", { type: "text", name: "caller_name", autocomplete: "off" });
  const correctionField = field("Corrected name", newName, "For a correction: the name to store instead.");
  correctionField.hidden = true;
  kind.addEventListener("change", () => { correctionField.hidden = kind.value !== "correction"; });
  const form = h("form", { class: "inline-form", "aria-label": "Log a privacy request" },
    field("Request", kind), field("Their e-mail", email), field("Or their phone number", phone), correctionField,
    h("div", { class: "filter-actions" }, h("button", { type: "submit", class: "button primary", text: "Log request" })));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { kind: kind.value, subject_email: email.value.trim() || null, subject_phone: phone.value.trim() || null };
    if (kind.value === "correction") body.correction = { caller_name: newName.value.trim() || null };
    try {
      await api.post("/api/privacy/requests", body);
      ctx.notify("Request logged. Carry it out once you have checked who is asking.", "success");
      form.reset();
      correctionField.hidden = true;
      await load();
    } catch (error) {
      ctx.showError(error);
    }
  });
  await load();
  return section("privacy", "Privacy requests",
    h("p", { class: "muted small", text: "A caller's request to see, correct or erase what the desk holds about them." }),
    form,
    h("div", { class: "table-wrap" }, cardTable(h("table", { class: "table compact" },
      h("thead", {}, h("tr", {}, ["Request", "Person", "State", "Logged", ""].map((t) => h("th", { scope: "col", text: t })))), tbody))));
}

async function incidentsSection(ctx) {
  const tbody = h("tbody");
  async function load() {
    const answer = await api.get("/api/incidents", { query: { limit: 50 } });
    const rows = (answer && (answer.data || answer.items)) || [];
    replace(tbody, rows.length ? rows.map((incident) => {
      const next = incident.status === "open" ? "mitigated" : incident.status === "mitigated" ? "resolved" : null;
      const advance = next ? h("button", { type: "button", class: "button secondary small", text: `Mark ${label("incident_status", next).toLowerCase()}`, "aria-label": `Mark “${incident.title}” ${next}` }) : null;
      advance?.addEventListener("click", async () => {
        advance.disabled = true;
        try {
          await api.patch(`/api/incidents/${encodeURIComponent(incident.id)}`, { status: next });
          await load();
        } catch (error) {
          ctx.showError(error);
          advance.disabled = false;
        }
      });
      return h("tr", {},
        h("td", {}, h("div", { text: incident.title }), incident.personal_data_breach
          ? h("div", { class: "small error-text", text: `Personal-data breach: tell the authority by ${fmtDateTime(incident.notify_by)}${incident.notified_at ? " (done)" : ""}` }) : null),
        h("td", { text: `${label("incident_kind", incident.kind)}, ${label("severity", incident.severity).toLowerCase()}` }),
        h("td", {}, codePill("incident_status", incident.status, incident.status === "resolved" ? "good" : "warn")),
        h("td", { text: fmtDateTime(incident.detected_at) }), h("td", {}, advance));
    }) : h("tr", {}, h("td", { colspan: 5, class: "empty", text: "No incidents." })));
  }
  const title = h("input", { type: "text", name: "title", required: true, maxlength: 200 });
  const severity = select({ name: "severity" }, labelOptions("severity", ["low", "medium", "high", "critical"]), "medium");
  const kind = select({ name: "kind" }, labelOptions("incident_kind", ["operational", "security"]), "operational");
  const breach = h("input", { type: "checkbox", name: "personal_data_breach" });
  const form = h("form", { class: "inline-form", "aria-label": "Open an incident" },
    field("What happened", title), field("Kind", kind), field("Severity", severity),
    h("div", { class: "field checkbox-field" }, h("label", {}, breach, " Personal data affected")),
    h("div", { class: "filter-actions" }, h("button", { type: "submit", class: "button primary", text: "Open incident" })));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api.post("/api/incidents", { title: title.value.trim(), kind: kind.value, severity: severity.value, personal_data_breach: breach.checked });
      form.reset();
      await load();
    } catch (error) {
      ctx.showError(error);
    }
  });
  await load();
  return section("incidents", "Incidents", form,
    h("div", { class: "table-wrap" }, cardTable(h("table", { class: "table compact" },
      h("thead", {}, h("tr", {}, ["Incident", "Kind", "State", "Detected", ""].map((t) => h("th", { scope: "col", text: t })))), tbody))));
}

/** A section that failed shows its error in place; the others still render. */
async function safely(title, build) {
  try {
    return await build();
  } catch (error) {
    if (error instanceof ApiError && error.status === 403) return null;
    return h("section", { class: "panel" }, h("h2", { text: title }), h("p", { class: "error-text", text: error.message }));
  }
}

export async function renderSettings(main, ctx) {
  const parts = await Promise.all([
    safely("Persona", () => personaSection(ctx)),
    safely("Voice pipeline", () => backendsSection(ctx)),
    ctx.can("privacy:manage") ? safely("Privacy requests", () => privacySection(ctx)) : null,
    ctx.can("incidents:manage") ? safely("Incidents", () => incidentsSection(ctx)) : null,
  ]);
  if (!ctx.isCurrent()) return undefined;
  replace(main,
    h("div", { class: "page-head" }, h("h1", { text: "Settings" }),
      ctx.can("settings:manage") ? null : h("p", { class: "muted", text: "You see what your role allows; changes are for administrators." })),
    parts.flat());
  return undefined;
}
