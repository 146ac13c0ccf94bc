"""The look: a banana-yellow Soft theme, compact, with dark-mode friendly custom CSS.

Fonts are Gradio's bundled LocalFonts (no request leaves the LAN).
"""

from __future__ import annotations

import gradio as gr
from gradio.themes.utils import fonts

BANANA = gr.themes.Color(
    name="banana",
    c50="#fffbea",
    c100="#fff3c4",
    c200="#fce588",
    c300="#fadb5f",
    c400="#f7c948",
    c500="#f0b429",
    c600="#de911d",
    c700="#cb6e17",
    c800="#b44d12",
    c900="#8d2b0b",
    c950="#5c1a05",
)


def theme() -> gr.themes.Base:
    return gr.themes.Soft(
        primary_hue=BANANA,
        secondary_hue=gr.themes.colors.amber,
        neutral_hue=gr.themes.colors.stone,
        spacing_size=gr.themes.sizes.spacing_sm,
        radius_size=gr.themes.sizes.radius_md,
        text_size=gr.themes.sizes.text_md,
        font=(fonts.LocalFont("IBM Plex Sans"), "ui-sans-serif", "system-ui", "sans-serif"),
        font_mono=(fonts.LocalFont("IBM Plex Mono"), "ui-monospace", "monospace"),
    ).set(
        button_primary_background_fill="*primary_400",
        button_primary_background_fill_hover="*primary_300",
        button_primary_text_color="#1f1a0e",
        button_primary_background_fill_dark="*primary_500",
        button_primary_background_fill_hover_dark="*primary_400",
        button_primary_text_color_dark="#1f1a0e",
        slider_color="*primary_500",
        slider_color_dark="*primary_500",
        block_title_text_weight="600",
        block_label_text_weight="600",
        checkbox_background_color_selected="*primary_500",
        checkbox_background_color_selected_dark="*primary_500",
    )


CSS = """
.gradio-container { max-width: 1680px !important; }
#app-header { display: flex; align-items: baseline; gap: 14px; padding: 2px 4px 6px; }
#app-header h1 { font-size: 1.55rem; margin: 0; font-weight: 700; letter-spacing: -0.01em;
  white-space: nowrap; }
#app-header .subtitle { color: var(--body-text-color-subdued); font-size: 0.95rem;
  flex: 1 1 280px; }
#app-header .logo { align-self: center; display: flex; }

/* Tabs: a touch bolder so the seven modes read as the main navigation. */
#mode-tabs > .tab-wrapper button { font-weight: 600; font-size: 0.95rem; }

.run-row { align-items: stretch; }
.run-row button { min-height: 44px; font-size: 1rem; }
.run-msg { min-height: 0; }
.run-msg .msg { padding: 8px 12px; border-radius: 8px; font-size: 0.92rem; line-height: 1.35;
  border-left-width: 4px !important; }
.msg-error { background: rgba(220, 38, 38, 0.10); border: 1px solid rgba(220, 38, 38, 0.45); }
.msg-warn { background: rgba(245, 158, 11, 0.12); border: 1px solid rgba(245, 158, 11, 0.5); }
.msg-info { background: rgba(59, 130, 246, 0.10); border: 1px solid rgba(59, 130, 246, 0.4); }
.msg-ok { background: rgba(34, 197, 94, 0.10); border: 1px solid rgba(34, 197, 94, 0.4); }

/* The progress line (ui/live.py): text over a thin bar, streamed by the page's follower. */
.run-status { min-height: 58px; border-radius: 10px; }
.run-status .status-idle, .run-status .status-busy, .run-status .status-done,
.run-status .status-error, .run-status .status-info {
  min-height: 56px; display: flex; align-items: center; padding: 0 14px; font-size: 0.92rem;
  border-radius: 10px; border: 1px solid var(--border-color-primary);
  background: var(--block-background-fill); }
.run-status .run-state { flex-direction: column; align-items: stretch; justify-content: center;
  gap: 7px; }
.run-line { font-variant-numeric: tabular-nums; }
.run-bar { height: 8px; border-radius: 4px; background: var(--neutral-200); overflow: hidden; }
.dark .run-bar { background: var(--neutral-700); }
.run-fill { height: 100%; background: var(--primary-500); border-radius: 4px;
  transition: width 0.25s linear; }

/* The live preview covers the result while a job runs (nothing is drawn when it is empty). */
.out-stack { position: relative; }
.out-stack > .live-preview { position: static !important; min-height: 0 !important;
  padding: 0 !important; border: 0 !important; }
.out-stack .live { position: absolute; inset: 0; z-index: 5; display: flex;
  flex-direction: column; align-items: center; justify-content: center; gap: 10px;
  border-radius: var(--block-radius); background: var(--block-background-fill);
  border: 1px solid var(--border-color-primary); }
.out-stack .live img { max-width: 100%; max-height: 100%; object-fit: contain; }
.live-step { font-size: 2rem; font-weight: 700; font-variant-numeric: tabular-nums;
  color: var(--body-text-color-subdued); }
.live-hint { max-width: 30em; text-align: center; font-size: 0.9rem; padding: 0 16px;
  color: var(--body-text-color-subdued); }
.status-idle { color: var(--body-text-color-subdued); }
.status-busy { color: var(--body-text-color); }
.status-done { color: #15803d; font-weight: 600; }
.dark .status-done { color: #4ade80; }
.status-error { color: #dc2626; font-weight: 600; }
.status-info { color: var(--body-text-color-subdued); }
.run-info { font-size: 0.92rem; color: var(--body-text-color-subdued); min-height: 1.4em; }

.send-row { align-items: center; flex-wrap: wrap; gap: 6px !important; }
.send-row > *, .send-row > .block { flex: 0 0 auto !important; min-width: 0 !important;
  width: auto !important; }
.send-label { font-size: 0.85rem; color: var(--body-text-color-subdued); white-space: nowrap; }
.aspect-row { flex-wrap: wrap; gap: 6px !important; }
.aspect-row > button { flex: 1 1 0 !important; min-width: 0 !important; padding-left: 2px !important;
  padding-right: 2px !important; }
.tight-row { flex-wrap: nowrap !important; gap: 6px !important; }
.tight-row > button { min-width: 0 !important; }
.mask-tools { align-items: center; }
#inpaint_mask_preview img { object-fit: contain; outline: 1px solid var(--border-color-primary); }
.loaded { overflow-wrap: anywhere; }
.hint, .hint p { color: var(--body-text-color-subdued); font-size: 0.86rem; }

/* Transparent results on a checkerboard, so a cut-out reads as a cut-out. */
#remove_background_result img, #remove_background_compare img, #outpaint_canvas img {
  background-color: #e5e5e5;
  background-image: linear-gradient(45deg, #c8c8c8 25%, transparent 25%),
    linear-gradient(-45deg, #c8c8c8 25%, transparent 25%),
    linear-gradient(45deg, transparent 75%, #c8c8c8 75%),
    linear-gradient(-45deg, transparent 75%, #c8c8c8 75%);
  background-size: 20px 20px;
  background-position: 0 0, 0 10px, 10px -10px, -10px 0;
}

/* Sidebar */
.side-brand { font-weight: 700; font-size: 1.05rem; margin: 2px 0 6px; }
.side-panel { display: flex; flex-direction: column; gap: 10px; font-size: 0.9rem; }
.side-title { font-weight: 700; font-size: 0.78rem; text-transform: uppercase;
  letter-spacing: 0.06em; color: var(--body-text-color-subdued); margin-top: 4px; }
.conn { display: flex; align-items: center; gap: 8px; font-weight: 600; }
.conn .dot { width: 10px; height: 10px; border-radius: 50%; display: inline-block; flex: none; }
.conn.online .dot { background: #22c55e; box-shadow: 0 0 0 3px rgba(34, 197, 94, 0.25); }
.conn.offline .dot { background: #ef4444; box-shadow: 0 0 0 3px rgba(239, 68, 68, 0.25); }
.conn.offline { color: #dc2626; }
.dark .conn.offline { color: #f87171; }
.side-panel .hint { font-size: 0.82rem; }
.side-panel .small { font-size: 0.75rem; }
.meter-label { display: flex; justify-content: space-between; font-size: 0.85rem; margin-bottom: 3px; }
.meter-value { font-variant-numeric: tabular-nums; }
.meter-track { height: 9px; border-radius: 5px; background: var(--neutral-200); overflow: hidden; }
.dark .meter-track { background: var(--neutral-700); }
.meter-fill { height: 100%; border-radius: 5px; transition: width 0.4s ease; }
.meter-fill.low { background: #22c55e; }
.meter-fill.mid { background: var(--primary-500); }
.meter-fill.high { background: #ef4444; }
.queue ul.mine, ul.missing { margin: 4px 0 0; padding-left: 0; list-style: none; }
.queue ul.mine li { display: flex; justify-content: space-between; padding: 3px 8px;
  border-radius: 6px; background: rgba(240, 180, 41, 0.16); margin-top: 3px; }
ul.missing li { font-size: 0.8rem; color: var(--body-text-color-subdued); margin-top: 3px; }
.modes { display: flex; flex-direction: column; font-size: 0.84rem; }
.mode-row { display: grid; grid-template-columns: 1fr auto 62px; gap: 6px; align-items: center;
  padding: 3px 2px; border-bottom: 1px solid var(--border-color-primary); }
.mode-row > :last-child { text-align: right; }
.mode-head { font-size: 0.72rem; font-weight: 600; color: var(--body-text-color-subdued); }
.side-warn { font-size: 0.8rem; padding: 6px 8px; border-radius: 6px;
  background: rgba(239, 68, 68, 0.10); border: 1px solid rgba(239, 68, 68, 0.35); }
.side-warn ul { margin: 2px 0 0; padding-left: 16px; }
.badge { padding: 1px 7px; border-radius: 999px; font-size: 0.75rem; font-weight: 600; }
.badge.ok { background: rgba(34, 197, 94, 0.16); color: #15803d; }
.badge.bad { background: rgba(239, 68, 68, 0.15); color: #b91c1c; }
.badge.unknown { background: var(--neutral-200); color: var(--neutral-600); }
.dark .badge.ok { color: #4ade80; } .dark .badge.bad { color: #f87171; }
.dark .badge.unknown { background: var(--neutral-700); color: var(--neutral-300); }
.fit.ok { color: #15803d; } .fit.bad { color: #dc2626; font-weight: 600; }
.dark .fit.ok { color: #4ade80; } .dark .fit.bad { color: #f87171; }
.fit.unknown { color: var(--body-text-color-subdued); }
.side-action { font-size: 0.86rem; }

/* The person's queue strip, under the header (hidden when empty). */
#queue-strip:not(:has(.queue-strip)) { display: none !important; }
.queue-strip { display: flex; flex-wrap: wrap; align-items: center; gap: 6px; font-size: 0.88rem;
  padding: 4px 2px; }
.qs-title { font-weight: 700; font-size: 0.78rem; text-transform: uppercase;
  letter-spacing: 0.06em; color: var(--body-text-color-subdued); margin-right: 4px; }
.qs-job { display: inline-flex; align-items: center; gap: 6px; padding: 3px 4px 3px 10px;
  border-radius: 999px; background: rgba(240, 180, 41, 0.16);
  border: 1px solid rgba(240, 180, 41, 0.45); max-width: 100%; }
.qs-job.waiting { background: var(--block-background-fill);
  border-color: var(--border-color-primary); }
.qs-cancel { border: 0; background: transparent; cursor: pointer; font-size: 0.95rem;
  min-width: 28px; min-height: 28px; border-radius: 50%; color: var(--body-text-color-subdued); }
.qs-cancel:hover { background: rgba(239, 68, 68, 0.15); color: #dc2626; }

#app-header .keys { margin-left: auto; font-size: 0.8rem; color: var(--body-text-color-subdued);
  white-space: nowrap; }
kbd { font-family: var(--font-mono); font-size: 0.78em; padding: 1px 5px; border-radius: 4px;
  border: 1px solid var(--border-color-primary); background: var(--block-background-fill); }
.seed-random { min-width: 150px !important; flex: 0 0 auto !important; }
.seed-actions { gap: 6px !important; margin-top: -4px; }
.seed-actions > button { flex: 0 0 auto !important; min-width: 0 !important; }

/* Narrow windows and phones: the sidebar starts closed; one line of status opens it. */
#phone-status { display: none; }
.phone-status { width: 100%; display: flex; align-items: center; gap: 6px; flex-wrap: wrap;
  font: inherit; font-size: 0.88rem; padding: 6px 10px; border-radius: 8px; cursor: pointer;
  border: 1px solid var(--border-color-primary); background: var(--block-background-fill);
  color: var(--body-text-color); text-align: left; }
.phone-status .dot { width: 9px; height: 9px; border-radius: 50%; display: inline-block; }
.phone-status .dot.on { background: #22c55e; } .phone-status .dot.off { background: #ef4444; }
.phone-status .open { margin-left: auto; font-weight: 600; }
@media (max-width: 899px) {
  #phone-status { display: block; }
  #app-header { flex-wrap: wrap; gap: 4px 10px; }
  #app-header .subtitle, #app-header .keys { display: none; }
  .out-stack .live img { max-height: 60vh; }
  /* The picture, not 520 px of letterbox around it. */
  .out-stack > [id$='_result'] { height: min(520px, 92vw) !important; }
  /* A finger can reach the editor's tools and the brush size (its toolbar then covers the
     label's line: the tab says what the picture is for). */
  .mask-editor button { min-width: 40px; min-height: 40px; }
  .mask-editor label[data-testid='block-label'] { display: none; }
  .mask-editor input[type=range] { height: 32px; }
}

#history-gallery { min-height: 140px; }
#history-details { font-size: 0.9rem; }
footer { opacity: 0.6; }
"""

# gr.HTML js_on_load snippets (`element` is the component's root, `trigger` sends an event).
CANCEL_JS = """
element.addEventListener('click', (event) => {
  const button = event.target.closest('[data-job]');
  if (button) { button.disabled = true; trigger('click', {job: button.dataset.job}); }
});
"""
OPEN_SIDEBAR_JS = """
element.addEventListener('click', () => {
  const sidebar = document.getElementById('sidebar');
  if (sidebar && !sidebar.classList.contains('open')) sidebar.querySelector('.toggle-button')?.click();
});
"""
# On page load: narrow windows start with the sidebar closed (it would cover the page).
NARROW_SIDEBAR_JS = """
() => {
  if (window.innerWidth >= 900) return;
  const close = (tries) => {
    const sidebar = document.getElementById('sidebar');
    if (sidebar && sidebar.classList.contains('open')) sidebar.querySelector('.toggle-button')?.click();
    else if (tries > 0) setTimeout(() => close(tries - 1), 100);
  };
  close(20);
}
"""
# A result landed: on a narrow screen, bring it into view (if its tab is the one shown).
SCROLL_TO_RESULT_JS = """
() => {
  if (window.innerWidth >= 900) return;
  for (const result of document.querySelectorAll('[id$="_result"]')) {
    if (result.offsetParent !== null) { result.scrollIntoView({block: 'center'}); break; }
  }
}
"""

HEAD = """
<link rel="icon" href="data:image/svg+xml,<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 100 100'><text y='.9em' font-size='90'>🍌</text></svg>">
<meta name="description" content="Banana Studio: Qwen-Image on your ComfyUI">
<script>
// Keys: Ctrl/Cmd+Enter runs the visible tab, like most creative tools; Esc stops its job.
const visibleRun = () => [...document.querySelectorAll("button[id$='_run']")]
  .find((b) => b.offsetParent !== null);
document.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
    const run = visibleRun();
    if (run) { e.preventDefault(); run.click(); }
  } else if (e.key === "Escape") {
    const run = visibleRun();
    const busy = run && run.textContent.trim() === "Queue";
    // Esc also closes menus and full-screen views: leave those to it.
    const open = document.querySelector("[aria-expanded='true'], .fullscreen, dialog[open]");
    if (!busy || open) return;
    document.getElementById(run.id.replace(/_run$/, "_stop"))?.click();
  }
});
// After Run on a narrow screen, the progress line comes into view.
document.addEventListener("click", (e) => {
  const run = e.target.closest && e.target.closest("button[id$='_run']");
  if (!run || window.innerWidth >= 900) return;
  const status = document.getElementById(run.id.replace(/_run$/, "_status"));
  setTimeout(() => status?.scrollIntoView({block: "start"}), 50);
}, true);
</script>
"""
