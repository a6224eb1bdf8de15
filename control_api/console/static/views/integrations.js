// Integration Studio: list, create and edit integrations (one form per kind), enable/disable, test, runs,
// the custom API builder with a live dry run, and dead-lettered deliveries to retry.
// Admins (integrations:manage) configure; supervisors (integrations:operate) watch runs and retry deliveries.
import { api } from "../api.js";
import { cardTable, field, fmtDateTime, fmtMs, h, pill, replace, select } from "../dom.js";

const KINDS = [
  ["freshdesk", "Freshdesk (tickets)"],
  ["webhook", "Webhook (signed events)"],
  ["slack", "Slack (notifications)"],
  ["email", "E-mail (notifications)"],
  ["custom_api", "Custom API (agent tool)"],
];
const KIND_NAMES = Object.fromEntries(KINDS);
const WEBHOOK_EVENTS = ["call.started", "call.ended", "call.analysed", "handoff.requested", "handoff.accepted", "ticket.created"];
const ALERT_EVENTS = ["handoff.waiting", "integration.failing"];
const ALL_EVENTS = [...WEBHOOK_EVENTS, ...ALERT_EVENTS];
const SECRETS = {
  freshdesk: [["api_key", "API key"]],
  webhook: [["signing_secret", "Signing secret (whsec_…)"]],
  slack: [["webhook_url", "Incoming webhook URL"]],
  email: [["username", "SMTP username"], ["password", "SMTP password"]],
  custom_api: [],
};
const EXAMPLE_TOOL = {
  tool: {
    name: "check_order_status",
    description: "Look up the status of the caller's order by its order number.",
    parameters: { type: "object", properties: { order_id: { type: "string" } }, required: ["order_id"] },
    examples: ["where is my order"],
  },
  method: "GET",
  url: "https://api.example.com/v1/orders/{{ args.order_id | urlencode }}",
  headers: { Authorization: "Bearer {{ secrets.token }}" },
  response: { status: "/order/status" },
  say: "Your order is {{ status }}.",
};

const json = (value) => JSON.stringify(value, null, 2);

/** Parse a JSON textarea; throws an Error naming the field. */
function parseJson(text, name, fallback) {
  if (!text.trim()) return fallback;
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`${name} is not valid JSON.`);
  }
}

function input(name, value, attrs = {}) {
  return h("input", { type: "text", name, value: value ?? "", autocomplete: "off", ...attrs });
}

function textarea(name, value, rows = 4) {
  const el = h("textarea", { name, rows, spellcheck: "false", class: "mono" });
  el.value = value ?? "";
  return el;
}

function eventBoxes(chosen, options) {
  const boxes = options.map((event) => {
    const box = h("input", { type: "checkbox", name: "events", value: event, checked: chosen.includes(event) });
    return h("label", { class: "tag" }, box, ` ${event}`);
  });
  const group = h("fieldset", { class: "field" }, h("legend", { text: "Events" }), h("div", { class: "badges" }, boxes));
  group.read = () => boxes.map((b) => b.querySelector("input")).filter((b) => b.checked).map((b) => b.value);
  return group;
}

/** The kind-specific part of the form: its fields and a `read()` that returns {config, secrets}. */
function kindFields(kind, config, secretsSet, ctx) {
  const secretInputs = (SECRETS[kind] || []).map(([name, text]) => {
    const el = h("input", {
      type: "password", name: `secret-${name}`, autocomplete: "new-password",
      placeholder: secretsSet.includes(name) ? "Set — leave empty to keep" : "",
    });
    return [name, el, field(text, el, secretsSet.includes(name) ? "Stored encrypted; never shown again." : null)];
  });
  const readSecrets = () => Object.fromEntries(secretInputs.filter(([, el]) => el.value).map(([name, el]) => [name, el.value]));
  const parts = [];
  let read;
  if (kind === "freshdesk") {
    const domain = input("domain", config.domain);
    const baseUrl = input("base_url", config.base_url, { type: "url" });
    const fallback = input("fallback_email", config.fallback_email, { type: "email" });
    parts.push(field("Freshdesk subdomain", domain, "acme for acme.freshdesk.com"),
      field("Base URL (instead of the subdomain)", baseUrl, "A sandbox or an on-premise address."),
      field("Fallback requester e-mail", fallback, "Used when the caller left no e-mail or phone."));
    read = () => ({ config: Object.fromEntries(Object.entries({ domain: domain.value.trim(), base_url: baseUrl.value.trim(), fallback_email: fallback.value.trim(), console_url: config.console_url }).filter(([, v]) => v)) });
  } else if (kind === "webhook") {
    const url = input("url", config.url, { type: "url" });
    const events = eventBoxes(config.events || [], ALL_EVENTS);
    parts.push(field("Receiver URL", url), events, h("small", { class: "hint", text: "No event ticked: every call, handoff and ticket event." }));
    read = () => ({ config: { url: url.value.trim(), events: events.read() } });
  } else if (kind === "slack" || kind === "email") {
    const events = eventBoxes(config.events || ALERT_EVENTS, ALL_EVENTS);
    if (kind === "email") {
      const host = input("host", config.host);
      const port = input("port", config.port ?? "", { type: "number", min: 1, max: 65535 });
      const security = select({ name: "security" }, [["starttls", "STARTTLS (587)"], ["tls", "TLS (465)"], ["none", "None (local relay)"]], config.security || "starttls");
      const sender = input("sender", config.sender, { type: "email" });
      const recipients = input("recipients", (config.recipients || []).join(", "));
      parts.push(field("SMTP host", host), field("Port", port, "Empty: the usual port for the security chosen."), field("Security", security),
        field("From", sender), field("To", recipients, "Comma-separated addresses."));
      read = () => {
        const out = { host: host.value.trim(), security: security.value, sender: sender.value.trim(), events: events.read(),
          recipients: recipients.value.split(",").map((r) => r.trim()).filter(Boolean) };
        if (port.value) out.port = Number(port.value);
        if (config.console_url) out.console_url = config.console_url;
        if (config.ca_pem) out.ca_pem = config.ca_pem; // a private CA set through the API survives an edit here
        return { config: out };
      };
    } else {
      read = () => ({ config: { events: events.read(), ...(config.console_url ? { console_url: config.console_url } : {}) } });
    }
    parts.push(events);
  } else {
    return customApiFields(config, secretsSet, ctx);
  }
  parts.push(...secretInputs.map(([, , node]) => node));
  return { node: h("div", { class: "stack" }, parts), read: () => ({ ...read(), secrets: readSecrets() }) };
}

/** The custom API builder: tool, request templates, response mapping, secrets, and a live dry run. */
function customApiFields(config, secretsSet, ctx) {
  const start = Object.keys(config).length ? config : EXAMPLE_TOOL;
  const tool = start.tool || {};
  const name = input("tool-name", tool.name, { pattern: "[a-z][a-z0-9_]{2,47}" });
  const description = input("tool-description", tool.description);
  const parameters = textarea("tool-parameters", json(tool.parameters || { type: "object", properties: {} }), 5);
  const method = select({ name: "method" }, ["GET", "POST", "PUT", "PATCH", "DELETE"], start.method || "GET");
  const url = input("url", start.url);
  const headers = textarea("headers", json(start.headers || {}), 3);
  const body = textarea("body", start.body || "", 4);
  const response = textarea("response", json(start.response || {}), 3);
  const say = input("say", start.say);
  const timeout = input("timeout_secs", start.timeout_secs ?? 4, { type: "number", min: 0.5, max: 10, step: 0.5 });
  const secrets = textarea("secrets", "", 2);
  secrets.placeholder = secretsSet.length ? `Set: ${secretsSet.join(", ")} — a JSON object replaces the named ones` : '{"token": "…"}';
  const args = textarea("dry-run-arguments", json(start.test_arguments || Object.fromEntries(Object.keys((tool.parameters || {}).properties || {}).map((k) => [k, ""]))), 3);
  const preview = h("pre", { class: "turn-text mono", "aria-live": "polite", "data-role": "dry-run" });
  const previewError = h("p", { class: "error-text", role: "status" });

  const read = () => ({
    config: {
      tool: { name: name.value.trim(), description: description.value.trim(), parameters: parseJson(parameters.value, "Parameters", {}), examples: tool.examples || [] },
      method: method.value,
      url: url.value.trim(),
      headers: parseJson(headers.value, "Headers", {}),
      ...(body.value.trim() ? { body: body.value } : {}),
      response: parseJson(response.value, "Response mapping", {}),
      say: say.value,
      timeout_secs: Number(timeout.value || 4),
      test_arguments: parseJson(args.value, "Arguments", {}),
    },
    secrets: parseJson(secrets.value, "Secrets", {}),
  });

  let timer = null;
  let sequence = 0;
  async function dryRun() {
    const mine = ++sequence;
    try {
      const { config: draft } = read();
      const result = await api.post("/api/integrations/dry-run", { config: draft, arguments: draft.test_arguments });
      if (mine !== sequence) return;
      if (result.ok) {
        const r = result.request;
        const lines = [`${r.method} ${r.url}`, ...Object.entries(r.headers).map(([k, v]) => `${k}: ${v}`)];
        if (r.body !== null) lines.push("", r.body);
        preview.textContent = lines.join("\n");
        previewError.textContent = "";
      } else {
        preview.textContent = "";
        previewError.textContent = result.error;
      }
    } catch (error) {
      if (mine !== sequence) return;
      preview.textContent = "";
      previewError.textContent = error.message;
    }
  }
  const schedule = () => {
    clearTimeout(timer);
    timer = setTimeout(dryRun, 400);
  };
  const node = h("div", { class: "stack" },
    h("div", { class: "grid-2" },
      h("div", { class: "stack" },
        h("h3", { text: "Tool" }),
        field("Tool name", name, "What the agent calls it, e.g. check_order_status."),
        field("When to use it", description),
        field("Parameters (JSON schema)", parameters),
        h("h3", { text: "Request" }),
        field("Method", method),
        field("URL template", url, "Host literal; path and query may use {{ args.x }}, {{ caller.phone }}, {{ call.summary }}."),
        field("Headers (JSON of templates)", headers),
        field("Body template", body),
        h("h3", { text: "Answer" }),
        field("Response mapping (name → JSON pointer or dotted path)", response),
        field("What the agent says", say, "A template over the mapped names, e.g. Your order is {{ status }}."),
        field("Timeout (s)", timeout),
        field("Secrets (JSON)", secrets, "Stored encrypted, used as {{ secrets.name }}, never shown.")),
      h("div", { class: "stack" },
        h("h3", { text: "Dry run" }),
        field("Arguments (JSON)", args, "Also used by Test."),
        h("button", { type: "button", class: "button secondary small", text: "Render request", onclick: dryRun }),
        h("p", { class: "muted small", text: "The request as it would be sent — nothing is sent; secrets are masked." }),
        preview, previewError)));
  node.addEventListener("input", schedule);
  node.addEventListener("change", schedule);
  if (ctx.can("integrations:manage")) setTimeout(dryRun, 0);
  return { node, read };
}

/** The create / edit form. `existing` is null for a new integration. */
function editor(existing, ctx, done) {
  const kind = select({ name: "type", disabled: Boolean(existing) }, KINDS, existing ? existing.type : "freshdesk");
  const name = input("name", existing ? existing.name : "", { required: true, maxlength: 100 });
  const enabled = h("input", { type: "checkbox", name: "enabled", checked: existing ? existing.enabled : true });
  const slot = h("div");
  const formError = h("p", { class: "form-error", role: "alert", hidden: true });
  let fields;
  const draw = () => {
    fields = kindFields(kind.value, existing ? existing.config : {}, existing ? existing.secrets_set : [], ctx);
    replace(slot, fields.node);
  };
  kind.addEventListener("change", draw);
  draw();
  const submit = h("button", { type: "submit", class: "button primary", text: existing ? "Save changes" : "Create integration" });
  const cancel = h("button", { type: "button", class: "button secondary", text: "Cancel", onclick: () => done(false) });
  const form = h("form", { class: "stack", "aria-label": existing ? `Edit ${existing.name}` : "New integration" },
    h("div", { class: "grid-3" }, field("Name", name), field("Type", kind),
      h("div", { class: "field" }, h("label", {}, enabled, " Enabled"))),
    slot, formError, h("div", { class: "filter-actions" }, submit, cancel));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    formError.textContent = "";
    formError.hidden = true;
    submit.disabled = true;
    try {
      const { config, secrets } = fields.read();
      if (existing) {
        const body = { name: name.value.trim(), config, enabled: enabled.checked };
        if (Object.keys(secrets).length) body.secrets = secrets;
        await api.put(`/api/integrations/${encodeURIComponent(existing.id)}`, body);
        ctx.notify(`${name.value.trim()} saved.`, "success");
      } else {
        await api.post("/api/integrations", { name: name.value.trim(), type: kind.value, config, secrets, enabled: enabled.checked });
        ctx.notify(`${name.value.trim()} created.`, "success");
      }
      done(true);
    } catch (error) {
      formError.textContent = error.message;
      formError.hidden = false;
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

function runsTable(runs) {
  if (!runs.length) return h("p", { class: "empty", text: "No runs yet." });
  return h("div", { class: "table-wrap" }, cardTable(h("table", { class: "table" },
    h("thead", {}, h("tr", {}, ["When", "What", "Result", "HTTP", "Latency", "Attempt", "Error"].map((t) => h("th", { scope: "col", text: t })))),
    h("tbody", {}, runs.map((run) => h("tr", {},
      h("td", { class: "nowrap", text: fmtDateTime(run.created_at) }),
      h("td", { text: run.action }),
      h("td", {}, pill(run.status, run.status === "succeeded" ? "ready" : run.status === "failed" ? "failed" : "pending")),
      h("td", { class: "num", text: run.response_status ?? "—" }),
      h("td", { class: "num", text: fmtMs(run.latency_ms) }),
      h("td", { class: "num", text: run.attempts }),
      h("td", { class: "small", text: run.error || "" })))))));
}

export async function renderIntegrations(main, ctx) {
  const manage = ctx.can("integrations:manage");
  const tbody = h("tbody");
  const count = h("p", { class: "muted small", role: "status" });
  const editorPanel = h("section", { class: "panel", "aria-labelledby": "integration-editor-title", hidden: true });
  const runsPanel = h("section", { class: "panel flush", "aria-labelledby": "integration-runs-title", hidden: true });
  const deadBody = h("tbody");
  const deadCount = h("p", { class: "muted small", role: "status" });
  let names = {};

  function openEditor(existing) {
    editorPanel.hidden = false;
    replace(editorPanel,
      h("h2", { id: "integration-editor-title", text: existing ? `Edit ${existing.name}` : "New integration" }),
      editor(existing, ctx, (saved) => {
        editorPanel.hidden = true;
        replace(editorPanel);
        if (saved) load();
      }));
    editorPanel.scrollIntoView({ block: "start" });
  }

  async function showRuns(integration) {
    try {
      const page = await api.get(`/api/integrations/${encodeURIComponent(integration.id)}/runs`, { query: { limit: 50 } });
      runsPanel.hidden = false;
      replace(runsPanel, h("h2", { id: "integration-runs-title", class: "panel-title", text: `Runs of ${integration.name}` }), runsTable(page.data));
      runsPanel.scrollIntoView({ block: "start" });
    } catch (error) {
      ctx.showError(error);
    }
  }

  function row(integration) {
    const buttons = [];
    const button = (text, handler, kind = "secondary") => {
      const b = h("button", { type: "button", class: `button ${kind} small`, text, "aria-label": `${text} ${integration.name}` });
      b.addEventListener("click", async () => {
        b.disabled = true;
        try {
          await handler();
        } catch (error) {
          ctx.showError(error);
        } finally {
          b.disabled = false;
        }
      });
      buttons.push(b);
    };
    if (manage) {
      button("Edit", async () => openEditor(integration));
      button(integration.enabled ? "Disable" : "Enable", async () => {
        await api.put(`/api/integrations/${encodeURIComponent(integration.id)}`, { enabled: !integration.enabled });
        ctx.notify(`${integration.name} ${integration.enabled ? "disabled" : "enabled"}.`, "success");
        await load();
      });
      button("Test", async () => {
        const result = await api.post(`/api/integrations/${encodeURIComponent(integration.id)}/test`);
        if (result.ok) ctx.notify(`${integration.name}: test succeeded (${result.status}, ${fmtMs(result.latency_ms)}).`, "success");
        else ctx.notify(`${integration.name}: test failed — ${result.error}`, "error");
        await showRuns(integration);
      });
    }
    button("Runs", async () => showRuns(integration));
    if (manage) {
      button("Delete", async () => {
        if (!window.confirm(`Delete ${integration.name}? Its undelivered deliveries are dropped; its runs are kept.`)) return;
        await api.del(`/api/integrations/${encodeURIComponent(integration.id)}`);
        ctx.notify(`${integration.name} deleted.`, "success");
        await load();
      }, "danger");
    }
    const detail = integration.type === "custom_api" && integration.config.tool ? `tool ${integration.config.tool.name}` :
      integration.config.url || integration.config.base_url || integration.config.domain || integration.config.host || integration.config.origin || "";
    return h("tr", { dataset: { integrationId: integration.id } },
      h("td", {}, h("div", { text: integration.name }), h("div", { class: "muted small mono", text: detail })),
      h("td", { text: KIND_NAMES[integration.type] || integration.type }),
      h("td", {}, integration.enabled ? pill("enabled", "ready", "Enabled") : pill("disabled", "neutral", "Disabled"),
        integration.failing_since ? [" ", pill("failing", "failed", `Failing since ${fmtDateTime(integration.failing_since)}`)] : null),
      h("td", { class: "small", text: integration.secrets_set.join(", ") || "—" }),
      h("td", {}, h("div", { class: "row-actions" }, buttons)));
  }

  async function loadDead() {
    const page = await api.get("/api/integrations/deliveries", { query: { status: "dead", limit: 100 } });
    replace(deadBody, page.data.map((delivery) => {
      const retry = h("button", { type: "button", class: "button secondary small", text: "Retry", "aria-label": `Retry delivery ${delivery.id}` });
      retry.addEventListener("click", async () => {
        retry.disabled = true;
        try {
          await api.post(`/api/integrations/deliveries/${encodeURIComponent(delivery.id)}/retry`);
          ctx.notify("Delivery queued again.", "success");
          await loadDead();
        } catch (error) {
          ctx.showError(error);
          retry.disabled = false;
        }
      });
      return h("tr", { dataset: { deliveryId: delivery.id } },
        h("td", { class: "nowrap", text: fmtDateTime(delivery.created_at) }),
        h("td", { text: names[delivery.integration_id] || delivery.integration_id }),
        h("td", { text: delivery.event }),
        h("td", { class: "num", text: delivery.attempts }),
        h("td", { class: "small", text: delivery.last_error || "" }),
        h("td", {}, retry));
    }));
    deadCount.textContent = page.data.length
      ? `${page.data.length} deliver${page.data.length === 1 ? "y" : "ies"} gave up after every retry; retry once the integration works again.`
      : "No failed deliveries: every event reached its integration.";
    deadBody.closest(".table-wrap").hidden = !page.data.length; // no header-only table
  }

  async function load() {
    try {
      const page = await api.get("/api/integrations");
      names = Object.fromEntries(page.data.map((i) => [i.id, i.name]));
      replace(tbody, page.data.map(row));
      count.textContent = page.count
        ? `${page.count} integration${page.count === 1 ? "" : "s"}.`
        : manage ? "0 integrations. Add one with New integration." : "0 integrations. An administrator sets them up.";
      tbody.closest(".table-wrap").hidden = !page.count; // no header-only table
      await loadDead();
    } catch (error) {
      ctx.showError(error);
    }
  }

  replace(main,
    h("div", { class: "page-head" }, h("h1", { text: "Integrations" }),
      manage ? h("button", { type: "button", class: "button primary", text: "New integration", onclick: () => openEditor(null) }) : null),
    editorPanel,
    h("section", { class: "panel flush", "aria-labelledby": "integrations-title" },
      h("h2", { id: "integrations-title", class: "panel-title", text: "Configured integrations" }),
      h("div", { class: "table-wrap" }, cardTable(h("table", { class: "table" },
        h("thead", {}, h("tr", {}, ["Name", "Type", "State", "Secrets set", ""].map((t) => h("th", { scope: "col", text: t })))),
        tbody))),
      h("div", { class: "table-foot" }, count)),
    runsPanel,
    h("section", { class: "panel flush", "aria-labelledby": "dead-title" },
      h("h2", { id: "dead-title", class: "panel-title", text: "Failed deliveries" }),
      h("div", { class: "table-wrap" }, cardTable(h("table", { class: "table" },
        h("thead", {}, h("tr", {}, ["When", "Integration", "Event", "Attempts", "Last error", ""].map((t) => h("th", { scope: "col", text: t })))),
        deadBody))),
      h("div", { class: "table-foot" }, deadCount)));
  await load();
  return undefined;
}
