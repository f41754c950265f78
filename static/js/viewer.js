/*
 * The labeling page's image viewer: zoom (wheel about the cursor, + and -), pan (drag),
 * original size (O: one image pixel on one screen pixel, again for fit), and display-only
 * brightness and contrast ([ ] and { }, or the sliders). Esc or "Reset" puts all back.
 *
 * Nothing here touches the <img> element, which label.js swaps for the prefetched one on every
 * answer: the view lives in CSS custom properties on the stage (--view-x, --view-y,
 * --view-scale, --view-brightness, --view-contrast) and two classes that switch the rules in
 * app.css on (`is-zoomed`, `is-filtered`). A fresh image therefore comes up at once with the
 * current filters, and `reset()` (zoom and pan back to fit, called by label.js on each new
 * image) writes nothing when the view is already at fit. Brightness and contrast are kept
 * from image to image (a dark set of photos needs them on every image); zoom and pan are not.
 *
 * The scale is relative to "fit" (the image contained in the stage). When the view asks for
 * more pixels than the served display copy has, the original file (`?original=1`) is loaded
 * in the background and swapped in once decoded, if the browser can show it.
 */
(function () {
  "use strict";

  const ZOOM_STEP = 1.25;
  const FILTER_STEP = 0.1;
  const FILTER_MIN = 0.2;
  const FILTER_MAX = 3;
  const MIN_SCALE = 0.25;

  function clamp(value, low, high) {
    return Math.min(high, Math.max(low, value));
  }

  function create(stage, controls) {
    const view = { scale: 1, x: 0, y: 0, brightness: 1, contrast: 1 };
    let image = null; // the <img> on screen
    let lease = null; // its lease: width and height are the original's pixels
    let drag = null;
    const upgraded = new WeakSet(); // images whose original was asked for

    // --- geometry --------------------------------------------------------------------

    // Screen (CSS) pixels per original pixel at fit.
    function fitRatio() {
      if (!lease || !lease.width || !lease.height) return 1;
      return Math.min(stage.clientWidth / lease.width, stage.clientHeight / lease.height) || 1;
    }

    // The scale at which one original pixel is one device pixel.
    function originalScale() {
      return 1 / (fitRatio() * (window.devicePixelRatio || 1));
    }

    function maxScale() {
      return Math.max(16, originalScale() * 8);
    }

    function isFit() {
      return view.scale === 1 && view.x === 0 && view.y === 0;
    }

    function isOriginal() {
      return Math.abs(view.scale / originalScale() - 1) < 1e-3 && view.x === 0 && view.y === 0;
    }

    // --- drawing ---------------------------------------------------------------------

    function apply() {
      const zoomed = !isFit();
      stage.classList.toggle("is-zoomed", zoomed);
      if (zoomed) {
        stage.style.setProperty("--view-x", view.x + "px");
        stage.style.setProperty("--view-y", view.y + "px");
        stage.style.setProperty("--view-scale", String(view.scale));
        upgradeIfNeeded();
      }
      const filtered = view.brightness !== 1 || view.contrast !== 1;
      stage.classList.toggle("is-filtered", filtered);
      if (filtered) {
        stage.style.setProperty("--view-brightness", String(view.brightness));
        stage.style.setProperty("--view-contrast", String(view.contrast));
      }
      showControls();
    }

    function showControls() {
      if (!controls) return;
      const percent = Math.round(view.scale * fitRatio() * (window.devicePixelRatio || 1) * 100);
      if (controls.zoom) controls.zoom.textContent = percent + "%";
      if (controls.original) controls.original.setAttribute("aria-pressed", String(isOriginal()));
      if (controls.brightness) controls.brightness.value = String(Math.round(view.brightness * 100));
      if (controls.contrast) controls.contrast.value = String(Math.round(view.contrast * 100));
      if (controls.reset) controls.reset.disabled = isFit() && view.brightness === 1 && view.contrast === 1;
    }

    // More device pixels asked for than the display copy has: fetch the original once.
    function upgradeIfNeeded() {
      const img = image;
      if (!img || !lease || upgraded.has(img) || !img.naturalWidth || img.naturalWidth >= lease.width) return;
      const wanted = view.scale * fitRatio() * (window.devicePixelRatio || 1) * lease.width;
      if (wanted <= img.naturalWidth * 1.01) return;
      upgraded.add(img);
      const original = new Image();
      original.decoding = "async";
      original.src = lease.image_url + (lease.image_url.includes("?") ? "&" : "?") + "original=1";
      const swap = () => {
        if (image === img && original.naturalWidth) img.src = original.src;
      };
      if (original.decode) original.decode().then(swap, () => {}); // a TIFF original: keep the copy
      else original.addEventListener("load", swap, { once: true });
    }

    // --- actions ---------------------------------------------------------------------

    // Zoom to `scale`, keeping the point (px, py) (relative to the stage's centre) still.
    function zoomTo(scale, px, py) {
      const next = clamp(scale, MIN_SCALE, maxScale());
      const k = next / view.scale;
      view.x = px - k * (px - view.x);
      view.y = py - k * (py - view.y);
      view.scale = next;
      if (Math.abs(view.scale - 1) < 1e-6 && Math.abs(view.x) < 0.5 && Math.abs(view.y) < 0.5) {
        view.scale = 1;
        view.x = 0;
        view.y = 0;
      }
      apply();
    }

    function zoomBy(factor) {
      zoomTo(view.scale * factor, 0, 0);
    }

    function toggleOriginal() {
      if (isOriginal()) Object.assign(view, { scale: 1, x: 0, y: 0 });
      else Object.assign(view, { scale: originalScale(), x: 0, y: 0 });
      apply();
    }

    function setFilter(name, value) {
      view[name] = Math.round(clamp(value, FILTER_MIN, FILTER_MAX) * 100) / 100;
      apply();
    }

    function resetAll() {
      Object.assign(view, { scale: 1, x: 0, y: 0, brightness: 1, contrast: 1 });
      apply();
    }

    // A new image on screen: back to fit (cheap when already there); filters stay.
    function show(img, newLease) {
      image = img;
      lease = newLease;
      if (!isFit()) {
        Object.assign(view, { scale: 1, x: 0, y: 0 });
        apply();
      } else if (controls && controls.zoom) {
        showControls();
      }
    }

    // One key of the page (already lower-cased when a letter); true when the viewer used it.
    // A held key repeats the zoom and filter steps, never the toggles.
    function handleKey(key, repeat) {
      if (repeat && (key === "o" || key === "Escape")) return true;
      if (key === "+" || key === "=") zoomBy(ZOOM_STEP);
      else if (key === "-" || key === "_") zoomBy(1 / ZOOM_STEP);
      else if (key === "o") toggleOriginal();
      else if (key === "]") setFilter("brightness", view.brightness + FILTER_STEP);
      else if (key === "[") setFilter("brightness", view.brightness - FILTER_STEP);
      else if (key === "}") setFilter("contrast", view.contrast + FILTER_STEP);
      else if (key === "{") setFilter("contrast", view.contrast - FILTER_STEP);
      else if (key === "Escape" && !(isFit() && view.brightness === 1 && view.contrast === 1)) resetAll();
      else return false;
      return true;
    }

    // --- pointer ---------------------------------------------------------------------

    stage.addEventListener(
      "wheel",
      (event) => {
        if (!image || image.hidden) return;
        event.preventDefault();
        const unit = event.deltaMode === 1 ? 16 : event.deltaMode === 2 ? stage.clientHeight : 1;
        const rect = stage.getBoundingClientRect();
        const px = event.clientX - (rect.left + rect.width / 2);
        const py = event.clientY - (rect.top + rect.height / 2);
        zoomTo(view.scale * Math.exp(-event.deltaY * unit * 0.002), px, py);
      },
      { passive: false }
    );

    stage.addEventListener("pointerdown", (event) => {
      if (event.button !== 0 || !image || image.hidden || event.target !== image) return;
      drag = { id: event.pointerId, x: event.clientX, y: event.clientY };
      stage.setPointerCapture(event.pointerId);
      stage.classList.add("is-dragging");
      event.preventDefault();
    });
    stage.addEventListener("pointermove", (event) => {
      if (!drag || event.pointerId !== drag.id) return;
      view.x += event.clientX - drag.x;
      view.y += event.clientY - drag.y;
      drag.x = event.clientX;
      drag.y = event.clientY;
      apply();
    });
    const endDrag = (event) => {
      if (!drag || event.pointerId !== drag.id) return;
      drag = null;
      stage.classList.remove("is-dragging");
    };
    stage.addEventListener("pointerup", endDrag);
    stage.addEventListener("pointercancel", endDrag);
    stage.addEventListener("dragstart", (event) => event.preventDefault());
    stage.addEventListener("dblclick", (event) => event.target === image && toggleOriginal());

    // --- controls --------------------------------------------------------------------

    if (controls) {
      const click = (button, action) => button && button.addEventListener("click", () => {
        action();
        button.blur(); // keys go back to the page
      });
      click(controls.zoomIn, () => zoomBy(ZOOM_STEP));
      click(controls.zoomOut, () => zoomBy(1 / ZOOM_STEP));
      click(controls.original, toggleOriginal);
      click(controls.reset, resetAll);
      [["brightness", controls.brightness], ["contrast", controls.contrast]].forEach(([name, slider]) => {
        if (!slider) return;
        slider.addEventListener("input", () => setFilter(name, Number(slider.value) / 100));
        slider.addEventListener("change", () => slider.blur()); // class keys work again at once
      });
    }
    window.addEventListener("resize", () => showControls());
    apply();

    return {
      show,
      handleKey,
      state: () => ({ ...view, original: isOriginal() }),
    };
  }

  window.ImageViewer = { create };
})();
