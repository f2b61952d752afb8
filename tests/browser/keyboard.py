"""A keyboard-only walk of a page in Chromium: real Tab presses, what got focus in which order, and how it looked.

`keyboard_walk(page)` lists the tabbable elements of <main> (document order; one radio per group, as
browsers do), then presses Tab from the top of the page until focus has been through <main> and left
it, recording every element that took focus and its computed outline and box-shadow at that moment
(a focusin listener, so the whole walk costs one round trip per key and two evaluations). Then it
follows the skip link (Enter) and checks that the next Tab lands on main's first element, and presses
the right arrow in each box that scrolls sideways, which must then scroll.
`walk_problems(walk)` turns what it saw into readable failures: an element Tab skipped or reached out
of order, one whose focus is invisible (no outline or box-shadow, or the same as unfocused), a
horizontally scrolling box the keyboard cannot reach or scroll, a skip link that is missing, hidden or broken.
"""

from __future__ import annotations

from typing import Any

# Marks <main>'s tabbable elements and the scrolling boxes, and starts recording focus.
_SETUP = """() => {
  const main = document.querySelector('main');
  const describe = (el) => {
    const label = (el.getAttribute('aria-label') || el.textContent || el.value || el.name || '').trim().replace(/\\s+/g, ' ');
    return el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + (el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\\s+/).join('.') : '') + ' "' + label.slice(0, 40) + '"';
  };
  const look = (el) => { const s = getComputedStyle(el); return {outline: s.outlineStyle === 'none' || s.outlineWidth === '0px' ? 'none' : s.outlineStyle + ' ' + s.outlineWidth + ' ' + s.outlineColor, shadow: s.boxShadow}; };
  const candidates = 'a[href], area[href], button, input:not([type=hidden]), select, textarea, summary, iframe, [tabindex], [contenteditable]';
  const tabbable = (el) => el.matches(candidates) && !el.disabled && el.tabIndex >= 0 && !el.closest('[inert]')
    && el.checkVisibility({visibilityProperty: true}) && !(el.tagName === 'SUMMARY' && el.parentElement.firstElementChild !== el);
  const groups = new Set();
  const expected = [];
  for (const el of main ? main.querySelectorAll('*') : []) {
    if (!tabbable(el)) continue;
    if (el.type === 'radio' && el.name) {  // Tab enters a radio group once: at its checked radio, else its first
      const key = (el.form ? el.form.id || Array.from(document.forms).indexOf(el.form) : '') + '|' + el.name;
      const group = Array.from(document.querySelectorAll('input[type=radio]')).filter((r) => r.name === el.name && r.form === el.form && tabbable(r));
      const enter = group.find((r) => r.checked) || group[0];
      if (el !== enter || groups.has(key)) continue;
      groups.add(key);
    }
    expected.push(el);
  }
  const scrollers = [], boxes = [];
  for (const el of main ? main.querySelectorAll('*') : []) {
    const s = getComputedStyle(el);
    if (['auto', 'scroll'].includes(s.overflowX) && el.scrollWidth > el.clientWidth + 1 && el.checkVisibility()) {
      scrollers.push({what: describe(el), tabbable: expected.includes(el)});
      boxes.push(el);
    }
  }
  const all = Array.from(document.querySelectorAll(candidates)).filter(tabbable);
  const before = main ? all.filter((el) => main.compareDocumentPosition(el) & Node.DOCUMENT_POSITION_PRECEDING).length : all.length;
  const walk = {expected, boxes, log: [], describe, look};
  walk.unfocused = expected.map(look);
  document.addEventListener('focusin', (e) => {
    const el = e.target, r = el.getBoundingClientRect();
    walk.log.push({i: expected.indexOf(el), inMain: !!main && main.contains(el), isMain: el === main, what: describe(el),
      href: el.getAttribute('href'), skip: el.classList.contains('skip-link'),
      shown: r.width > 0 && r.height > 0 && r.right > 0 && r.bottom > 0 && r.left < innerWidth && r.top < innerHeight, ...look(el)});
  }, true);
  window.__walk = walk;
  return {count: expected.length, before, scrollers, names: expected.map(describe)};
}"""

_RESULT = "() => ({log: window.__walk.log, unfocused: window.__walk.unfocused})"
# Whether the box has scrolled right within a second (keyboard scrolling may be animated).
_SCROLLED = """(i) => new Promise((resolve) => {
  const box = window.__walk.boxes[i], until = performance.now() + 1000;
  const poll = () => box.scrollLeft > 0 ? resolve(true) : performance.now() > until ? resolve(false) : requestAnimationFrame(poll);
  poll();
})"""


def keyboard_walk(page) -> dict[str, Any]:
    """Tab through the page from the top, then use its skip link; what took focus, in order, and how it looked."""
    page.evaluate("() => { document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0); }")
    setup = page.evaluate(_SETUP)
    for _ in range(setup["before"] + setup["count"] + 1):  # through the frame, through main, and one step out
        page.keyboard.press("Tab")
    walked = page.evaluate(_RESULT)
    page.focus(".skip-link")
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    after = page.evaluate(_RESULT)
    for i, box in enumerate(setup["scrollers"]):  # a box the keyboard reaches scrolls with the arrow keys
        if box["tabbable"]:
            page.evaluate("i => { const box = window.__walk.boxes[i]; box.scrollLeft = 0; box.focus(); }", i)
            page.keyboard.press("ArrowRight")
            box["scrolled"] = page.evaluate(_SCROLLED, i)
    return {**setup, "log": walked["log"], "unfocused": walked["unfocused"], "skip": after["log"][len(walked["log"]) :]}


def _visible(look: dict[str, str]) -> bool:
    return look["outline"] != "none" or look["shadow"] not in ("none", "")


def walk_problems(walk: dict[str, Any]) -> list[str]:
    """What the walk found wrong, one readable line each (empty: keyboard users can use the page)."""
    problems: list[str] = []
    log, names = walk["log"], walk["names"]
    if not log or not log[0]["skip"] or not log[0]["shown"] or log[0]["href"] != "#main":
        problems.append(f"the first Tab does not show a skip link to #main: {log[:1]}")
    in_main = [entry for entry in log if entry["inMain"] and not entry["isMain"]]
    reached = [entry["i"] for entry in in_main]
    if reached != list(range(len(names))):
        missing = [names[i] for i in range(len(names)) if i not in reached]
        extra = [entry["what"] for entry in in_main if entry["i"] < 0]
        problems.append(f"Tab order in main is {reached} of {len(names)} (skipped {missing}, not expected {extra})")
    for entry in in_main:
        if entry["i"] >= 0 and (not _visible(entry) or walk["unfocused"][entry["i"]] == _look(entry)):
            problems.append(f"no visible focus indicator on {entry['what']}: {_look(entry)}")
    for box in walk["scrollers"]:
        if not box["tabbable"]:
            problems.append(f"{box['what']} scrolls sideways but the keyboard cannot reach it (no tabindex=0)")
        elif not box.get("scrolled"):
            problems.append(f"{box['what']} takes focus but does not scroll with the arrow keys")
    skip = [entry for entry in walk["skip"] if not entry["skip"]]  # after the skip link took focus: main, then its first
    if not skip or not skip[0]["isMain"] or (names and (len(skip) < 2 or skip[1]["i"] != 0)):
        problems.append(f"the skip link does not lead to main's first element: {[e['what'] for e in skip]}")
    return problems


def _look(entry: dict[str, Any]) -> dict[str, str]:
    return {"outline": entry["outline"], "shadow": entry["shadow"]}
