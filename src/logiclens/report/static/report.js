/* logiclens report: sorting and filtering of the unit table and cards. No network, no libraries.
 * The page embeds its data as JSON in <script id="report-data">; rows and cards are rendered
 * (and escaped) by the report builder, so this script only reorders and hides them. */
(function () {
  "use strict";
  var root = document.documentElement;
  window.addEventListener("error", function (event) {
    root.setAttribute("data-error", String(event.message || "error"));
  });

  var data = JSON.parse(document.getElementById("report-data").textContent);
  var units = data.units;
  var kinds = {};
  data.columns.forEach(function (column) { kinds[column.key] = column.kind; });
  units.forEach(function (unit, index) { unit._order = index; });

  var rows = {};
  var cards = {};
  Array.prototype.forEach.call(document.querySelectorAll("#unit-table tbody tr"), function (row) {
    rows[row.getAttribute("data-anchor")] = row;
  });
  Array.prototype.forEach.call(document.querySelectorAll("#card-list > .card"), function (card) {
    cards[card.getAttribute("data-anchor")] = card;
  });
  var tbody = document.querySelector("#unit-table tbody");
  var cardList = document.getElementById("card-list");
  var more = document.getElementById("show-more");

  var state = { key: data.sort.key, direction: data.sort.direction, shown: data.page_size, pinned: null };
  var field = function (id) { return document.getElementById(id); };
  var controls = ["f-layer", "f-category", "f-length", "f-min", "f-max", "f-text"].map(field);

  function value(id) {
    var element = field(id);
    return element ? element.value.trim() : "";
  }

  function isMissing(x) {
    return x === null || x === undefined || x === "" || (typeof x === "number" && isNaN(x));
  }

  function matcher() {
    var layer = value("f-layer");
    var category = value("f-category");
    var length = value("f-length");
    var low = value("f-min") === "" ? null : parseFloat(value("f-min"));
    var high = value("f-max") === "" ? null : parseFloat(value("f-max"));
    var text = value("f-text").toLowerCase();
    return function (unit) {
      if (layer && unit.layer !== layer) { return false; }
      if (category && unit.category !== category) { return false; }
      if (length === "none" && !isMissing(unit.length)) { return false; }
      if (length && length !== "none" && String(unit.length) !== length) { return false; }
      if (low !== null && !isNaN(low) && (isMissing(unit.iou) || unit.iou < low)) { return false; }
      if (high !== null && !isNaN(high) && (isMissing(unit.iou) || unit.iou > high)) { return false; }
      if (text) {
        var haystack = ((unit.formula || "") + " " + (unit.best_atomic || "")).toLowerCase();
        if (haystack.indexOf(text) < 0) { return false; }
      }
      return true;
    };
  }

  function compare(a, b) {
    var x = a[state.key];
    var y = b[state.key];
    var missingX = isMissing(x);
    var missingY = isMissing(y);
    if (missingX || missingY) {
      if (missingX && missingY) { return a._order - b._order; }
      return missingX ? 1 : -1; /* missing values last, either direction */
    }
    var kind = kinds[state.key];
    var order;
    if (kind === "number" || kind === "flag") {
      order = Number(x) - Number(y);
    } else if (kind === "unit" && !isNaN(Number(x)) && !isNaN(Number(y))) {
      order = Number(x) - Number(y);
    } else {
      order = String(x).localeCompare(String(y));
    }
    return order !== 0 ? state.direction * order : a._order - b._order;
  }

  function materialise(card) {
    var template = card.querySelector("template.examples");
    if (template) { template.parentNode.replaceChild(document.importNode(template.content, true), template); }
  }

  function apply() {
    var keep = matcher();
    var selected = units.filter(keep).sort(compare);
    var visible = {};
    var rowFragment = document.createDocumentFragment();
    var cardFragment = document.createDocumentFragment();
    selected.forEach(function (unit, index) {
      visible[unit.anchor] = index;
      rowFragment.appendChild(rows[unit.anchor]);
      cardFragment.appendChild(cards[unit.anchor]);
    });
    units.forEach(function (unit) {
      var index = visible[unit.anchor];
      rows[unit.anchor].hidden = index === undefined;
      var card = cards[unit.anchor];
      var pinned = unit.anchor === state.pinned;
      card.hidden = !pinned && (index === undefined || index >= state.shown);
      if (!card.hidden) { materialise(card); }
      card.classList.toggle("pinned", pinned);
    });
    tbody.appendChild(rowFragment);
    cardList.appendChild(cardFragment);
    var total = units.length;
    var shownCards = Math.min(state.shown, selected.length);
    field("count").textContent = (selected.length === total ? total + " units" : selected.length + " of " + total + " units") +
      " · click a column to sort, a formula to see its card";
    field("card-count").textContent = selected.length === 0 ? "No unit matches the filters." :
      "Showing " + shownCards + " of " + selected.length + " cards, in the table's order.";
    var left = selected.length - shownCards;
    more.hidden = left <= 0;
    more.textContent = "Show " + Math.min(left, data.page_size) + " more (" + left + " left)";
    Array.prototype.forEach.call(document.querySelectorAll("#unit-table thead th"), function (th) {
      var key = th.getAttribute("data-key");
      if (key === state.key) {
        th.setAttribute("aria-sort", state.direction > 0 ? "ascending" : "descending");
      } else {
        th.removeAttribute("aria-sort");
      }
    });
    root.setAttribute("data-visible-cards", String(document.querySelectorAll("#card-list > .card:not([hidden])").length));
  }

  function reset() {
    state.shown = data.page_size;
    state.pinned = null;
  }

  var timer = null;
  controls.forEach(function (element) {
    if (!element) { return; }
    var onChange = function () {
      reset();
      window.clearTimeout(timer);
      timer = window.setTimeout(apply, element.type === "search" || element.type === "number" ? 150 : 0);
    };
    element.addEventListener("input", onChange);
    element.addEventListener("change", onChange);
  });
  field("f-reset").addEventListener("click", function () {
    controls.forEach(function (element) { if (element) { element.value = ""; } });
    state.key = data.sort.key;
    state.direction = data.sort.direction;
    reset();
    apply();
  });
  Array.prototype.forEach.call(document.querySelectorAll("#unit-table thead th button"), function (button) {
    button.addEventListener("click", function () {
      var key = button.parentNode.getAttribute("data-key");
      if (state.key === key) {
        state.direction = -state.direction;
      } else {
        state.key = key;
        state.direction = kinds[key] === "number" || kinds[key] === "flag" ? -1 : 1;
      }
      reset();
      apply();
    });
  });
  more.addEventListener("click", function () {
    state.shown += data.page_size;
    apply();
  });

  function reveal(anchor) {
    if (!cards[anchor]) { return; }
    if (cards[anchor].hidden) { state.pinned = anchor; }
    apply();
  }
  document.addEventListener("click", function (event) {
    var link = event.target.closest ? event.target.closest("a[href^='#u-']") : null;
    if (link) { reveal(link.getAttribute("href").slice(1)); }
  });
  window.addEventListener("hashchange", function () { reveal(window.location.hash.slice(1)); });

  /* region cards (code-cluster runs) sit in closed <details>; their examples are made when opened */
  Array.prototype.forEach.call(document.querySelectorAll("details.region-cards"), function (details) {
    details.addEventListener("toggle", function () {
      if (details.open) { Array.prototype.forEach.call(details.querySelectorAll(".card"), materialise); }
    });
  });
  function revealRegion(anchor) {
    var card = document.getElementById(anchor);
    var details = card && card.closest ? card.closest("details.region-cards") : null;
    if (!details) { return; }
    details.open = true;
    materialise(card);
  }
  document.addEventListener("click", function (event) {
    var link = event.target.closest ? event.target.closest("a[href^='#r-']") : null;
    if (link) { revealRegion(link.getAttribute("href").slice(1)); }
  });
  window.addEventListener("hashchange", function () {
    if (window.location.hash.indexOf("#r-") === 0) { revealRegion(window.location.hash.slice(1)); }
  });
  if (window.location.hash.indexOf("#r-") === 0) {
    revealRegion(window.location.hash.slice(1));
    var regionCard = document.getElementById(window.location.hash.slice(1));
    if (regionCard) { regionCard.scrollIntoView(); }
  }

  var masks = field("toggle-masks");
  if (masks) {
    masks.addEventListener("change", function () { root.classList.toggle("hide-masks", !masks.checked); });
  }

  if (window.location.hash.indexOf("#u-") === 0) {
    reveal(window.location.hash.slice(1));
    var target = cards[window.location.hash.slice(1)];
    if (target) { target.scrollIntoView(); }
  } else {
    apply();
  }
  root.setAttribute("data-ready-ms", String(Math.round(window.performance.now())));
  root.setAttribute("data-ready", "true");
})();
