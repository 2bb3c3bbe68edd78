// wakaq dashboard: the Workflows page (#workflows: recent workflows; #workflows/<id>: one workflow's steps).
// Loaded before app.js, which builds the page from the factory registered here with its helpers (`ui`). As in
// app.js, every value from Redis (ids, task names, errors, results) reaches the page through textContent only:
// this file never assigns innerHTML or outerHTML and never calls insertAdjacentHTML or document.write.
"use strict";

(() => {
  const LIST_SIZE = 50;
  const MEMBERS_SIZE = 100;
  const STATUSES = ["running", "done", "failed", "cancelled"];
  const STATES = [...STATUSES, "waiting", "pending", "retrying"]; // a step's states (styled by class)

  window.wakaqPages = window.wakaqPages || {};
  window.wakaqPages.workflows = (ui) => {
    const { $, el, fill, getJSON, postJSON, flash, report, utc, num } = ui;
    const state = { listOffset: 0, status: "", id: "", memberOffset: 0, data: null };

    function link(id) {
      // NOTE: a fragment link: whatever the id holds, it can only name a place on this page
      const a = el("a", { class: "wf-link" }, id);
      a.href = `#workflows/${encodeURIComponent(id)}`;
      return a;
    }

    function badge(status) {
      return el("span", { class: `wf-state st-${STATES.includes(status) ? status : "other"}` }, status);
    }

    function pager(target, offset, size, total, go) {
      const prev = el("button", { type: "button", class: "prev", onclick: () => go(Math.max(0, offset - size)) }, "‹ Prev");
      prev.disabled = offset === 0;
      const next = el("button", { type: "button", class: "next", onclick: () => go(offset + size) }, "Next ›");
      next.disabled = offset + size >= total;
      const first = total ? offset + 1 : 0;
      fill($(target), [prev, el("span", { class: "summary" }, `${num(first)}–${num(Math.min(total, offset + size))} of ${num(total)}`), next]);
    }

    // ---- the list ----------------------------------------------------------------------------------------------

    async function loadList() {
      const data = await getJSON("/api/workflows", { offset: state.listOffset, limit: LIST_SIZE, status: state.status });
      const c = data.counts;
      $("wf-counts").textContent = `${num(c.recent)} recent: ` + STATUSES.map((s) => `${num(c[s] || 0)} ${s}`).join(" · ");
      pager("wf-pager", data.offset, LIST_SIZE, data.total, (o) => { state.listOffset = o; loadList().catch(report); });
      const rows = data.items.map((w) => el("tr", { "data-workflow": w.id },
        el("td", null, link(w.id)),
        el("td", { class: "status" }, badge(w.status)),
        el("td", null, utc(w.started)),
        el("td", { class: "num" }, num(w.nodes)),
        el("td", { class: "tasks" }, el("code", null, w.tasks.join(", ") + (w.more_tasks ? ", …" : ""))),
        el("td", { class: "error" }, w.error_type ? `${w.error_type}${w.error ? `: ${w.error}` : ""}` : "")));
      fill($("wf-table").tBodies[0], rows.length ? rows : [el("tr", null, el("td", { colspan: 6, class: "note" },
        state.status ? `no recent workflow is ${state.status}` : "no recent workflows (started with chain(...).delay() or group(...).delay())"))]);
    }

    // ---- one workflow ------------------------------------------------------------------------------------------

    function outcome(m) {
      if (m.state === "done") return el("code", { class: "value result" }, m.result ?? "None");
      if (m.error_type) return el("span", { class: "reason" }, `${m.error_type}${m.error ? `: ${m.error}` : ""}`);
      return "";
    }

    function place(m) {
      if (m.in === null || m.in === undefined) return "";
      return m.in === "chain" ? `step ${m.position} of chain ${m.parent}` : `member ${m.position} of group ${m.parent}`;
    }

    async function loadDetail() {
      const data = await getJSON("/api/workflow", { id: state.id, offset: state.memberOffset, limit: MEMBERS_SIZE });
      state.data = data;
      $("wf-id").textContent = data.id;
      fill($("wf-status-text"), [badge(data.status)]);
      $("wf-cancel").disabled = data.status !== "running";
      const counts = data.counts
        ? Object.entries(data.counts).map(([s, n]) => `${num(n)} ${s}`).join(" · ")
        : `${num(data.total)} steps (too many to count their states)`;
      const ended = data.status !== "running";
      fill($("wf-summary"), [
        el("div", { class: "meta" }, `started ${utc(data.started)} · ${num(data.total)} step${data.total === 1 ? "" : "s"} · ${counts}`,
          data.expires_in !== null ? ` · kept ${ui.span(data.expires_in)} more` : ""),
        data.status === "done" ? el("div", null, "result ", el("code", { class: "value wf-result" }, data.result ?? "None")) : null,
        data.error_type ? el("div", { class: "reason wf-error" }, `${data.error_type}${data.error ? `: ${data.error}` : ""}`,
          data.failed_node !== null ? ` (node ${data.failed_node})` : "") : null,
        ended && data.counts && data.counts.waiting ? el("div", { class: "note" }, `the ${data.status} workflow will not start its waiting steps`) : null,
      ]);
      pager("wf-members-pager", data.offset, MEMBERS_SIZE, data.total, (o) => { state.memberOffset = o; loadDetail().catch(report); });
      fill($("wf-members").tBodies[0], data.members.map((m) => el("tr", { "data-node": m.node, "data-state": m.state },
        el("td", { class: "num" }, m.node),
        el("td", { class: "task" }, el("code", null, m.task ?? "?")),
        el("td", { class: "place muted" }, place(m)),
        el("td", { class: "state" }, badge(m.state)),
        el("td", null, m.at ? utc(m.at) : ""),
        el("td", { class: "outcome" }, outcome(m)))));
    }

    async function cancel() {
      const id = state.id;
      if (!window.confirm(`Cancel workflow ${id}? Its queued steps are removed and no later step starts; running steps finish.`)) return;
      try {
        await postJSON("/api/workflow/cancel", { id });
        flash(`cancelled workflow ${id}`);
      } catch (e) { report(e); }
      await loadDetail().catch(report);
    }

    $("wf-status-filter").addEventListener("change", () => { state.status = $("wf-status-filter").value; state.listOffset = 0; loadList().catch(report); });
    $("wf-cancel").addEventListener("click", cancel);

    return {
      every: 2000,
      load: (arg) => {
        let id = "";
        try { id = decodeURIComponent(arg || ""); } catch (e) { id = ""; }
        $("wf-list-view").hidden = Boolean(id);
        $("wf-detail-view").hidden = !id;
        if (id !== state.id) { state.id = id; state.memberOffset = 0; }
        return id ? loadDetail() : loadList();
      },
    };
  };
})();
