"""The HTML report's own style sheet and script: inlined into every page, allowed by its
Content-Security-Policy hash (``html_report.CSP``), nothing fetched."""

from __future__ import annotations

STYLE = """
:root{--fg:#1f2328;--muted:#656d76;--line:#d8dee4;--bg:#f6f8fa;--pass:#1a7f37;--fail:#cf222e;
--accent:#0969da}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1280px;margin:0 auto;padding:20px 24px 32px}
h1{font-size:26px;margin:0 0 4px}h2{font-size:16px;margin:0 0 12px}h2+p{margin-top:-8px}
section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:16px 18px;
margin:0 0 16px}section h2:not(:first-child){margin-top:20px}
.banner{border-left:6px solid var(--fail)}.banner.pass{border-left-color:var(--pass)}
.banner h1 span{color:var(--fail)}.banner.pass h1 span{color:var(--pass)}
.meta{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:10px 0 0}
.meta dt{color:var(--muted)}.meta dd{margin:0}
.grid{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:16px;margin:0 0 16px;
align-items:start}.grid section{margin:0}.stack{display:grid;gap:16px}
@media(max-width:960px){.grid{grid-template-columns:1fr}}
.counts{display:flex;flex-wrap:wrap;gap:10px}
.count{font:inherit;text-align:left;background:#fff;border:1px solid var(--line);
border-radius:8px;padding:8px 14px;min-width:118px;cursor:pointer;border-top:4px solid #8c959f}
.count b{display:block;font-size:26px;line-height:1.2}.count:disabled{opacity:.45;cursor:default}
.d-fixed,.d-new_pass{border-top-color:var(--pass)}.d-still_failing{border-top-color:#d4a72c}
.d-regressed,.d-new_fail,.d-error,.d-undecided{border-top-color:var(--fail)}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;vertical-align:top;padding:6px 8px;border-bottom:1px solid var(--line)}
th{color:var(--muted);font-size:12px;font-weight:600;text-transform:uppercase}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.badge{display:inline-block;padding:0 8px;border-radius:10px;font-size:12px;font-weight:600;
color:#fff;background:#6e7781;white-space:nowrap}.b-error{background:#8250df}
.b-pass,.b-fixed,.b-new_pass{background:var(--pass)}.b-fail,.b-regressed,.b-new_fail{
background:var(--fail)}.b-still_failing,.b-mixed{background:#bf8700}
.big{font-size:34px;font-weight:700;line-height:1.1}
.warn{background:#fff8c5;border:1px solid #d4a72c;border-radius:6px;padding:6px 10px;margin:8px 0}
.muted,.file{color:var(--muted)}.file{font-size:12px}.pid,.file{overflow-wrap:anywhere}
.pid{font-weight:600}
.tag{display:inline-block;white-space:nowrap;background:#ddf4ff;color:#0550ae;padding:0 7px;
border-radius:10px;font-size:12px;margin:2px 3px 0 0}
.check{background:#ffebe9;border:1px solid #ffaba8;border-radius:6px;padding:3px 8px;
margin-top:5px;color:#82071e;word-break:break-word}.check code{font-weight:700}
td.failed{box-shadow:inset 3px 0 0 var(--fail)}
.reply{white-space:pre-wrap;word-break:break-word;max-height:14em;overflow:auto;margin-top:5px;
background:var(--bg);border-radius:6px;padding:6px 8px;
font:12.5px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.filters{display:flex;flex-wrap:wrap;gap:14px;align-items:center;margin:0 0 10px}
select,button.reset{font:inherit;padding:3px 6px}
#pair-table{table-layout:fixed}.c-id{width:21%}.c-kind{width:8%}.c-delta{width:11%}
svg{display:block;width:100%;height:auto}svg text{font-size:11px;fill:#656d76}
.legend{display:flex;flex-wrap:wrap;gap:4px 16px;font-size:12px;color:var(--muted);margin:4px 0}
.sw{display:inline-block;width:10px;height:10px;border-radius:50%;margin-right:4px}
.sw.p{background:var(--pass)}.sw.f{background:var(--fail)}.sw.h{border:2px solid #6e7781}
.sw.l{background:var(--accent);height:3px;width:16px;border-radius:0;vertical-align:3px}
.sw.c,.sw.b,.sw.a{border-radius:2px;background:#c8d9f0}.sw.b{background:#8c959f}
.sw.a{background:var(--accent)}
footer{color:var(--muted);font-size:12px;text-align:center}
"""

SCRIPT = """
(() => {
  const rows = Array.from(document.getElementById("pair-table").tBodies[0].rows);
  const pick = {delta: document.getElementById("f-delta"),
    kind: document.getElementById("f-kind"), tag: document.getElementById("f-tag")};
  function apply() {
    let shown = 0;
    for (const row of rows) {
      const ok = (!pick.delta.value || row.dataset.delta === pick.delta.value)
        && (!pick.kind.value || row.dataset.kind === pick.kind.value)
        && (!pick.tag.value || JSON.parse(row.dataset.tags).includes(pick.tag.value));
      row.hidden = !ok;
      if (ok) shown++;
    }
    document.getElementById("shown").textContent = String(shown);
    document.getElementById("no-match").hidden = shown > 0;
  }
  for (const select of Object.values(pick)) select.addEventListener("change", apply);
  document.getElementById("f-reset").addEventListener("click", () => {
    for (const select of Object.values(pick)) select.value = "";
    apply();
  });
  for (const card of document.querySelectorAll("button.count")) {
    card.addEventListener("click", () => {
      pick.delta.value = card.dataset.delta;
      apply();
      document.getElementById("pairs").scrollIntoView();
    });
  }
  apply();
})();
"""
