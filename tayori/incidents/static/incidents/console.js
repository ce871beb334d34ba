// The incident console's keyboard shortcuts. Every control is also reachable by Tab; these
// only save keystrokes: number keys choose a notice type, arrows move between the types, the
// service filter narrows the list (Enter picks the only match), Ctrl+Enter submits the form.
(function () {
  "use strict";
  var choices = Array.prototype.slice.call(document.querySelectorAll(".type-choice"));
  document.addEventListener("keydown", function (event) {
    var target = event.target;
    var typing = target.matches("input, textarea, select, [contenteditable]");
    if (choices.length && !typing && !event.ctrlKey && !event.metaKey && !event.altKey) {
      if (/^[1-9]$/.test(event.key) && choices[Number(event.key) - 1]) {
        event.preventDefault();
        choices[Number(event.key) - 1].click();
        return;
      }
      var at = choices.indexOf(document.activeElement);
      var step = {ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1}[event.key];
      if (step && at >= 0) {
        event.preventDefault();
        choices[(at + step + choices.length) % choices.length].focus();
        return;
      }
    }
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && target.form) {
      event.preventDefault();
      var submit = target.form.querySelector("button[type=submit].primary");
      if (submit) { submit.click(); } else { target.form.requestSubmit(); }
    }
  });

  document.querySelectorAll("input[data-filter]").forEach(function (filter) {
    var picker = document.getElementById(filter.dataset.filter);
    var items = Array.prototype.slice.call(picker.querySelectorAll("label[data-text]"));
    function visible() { return items.filter(function (item) { return !item.hidden; }); }
    filter.addEventListener("input", function () {
      var words = filter.value.trim().toLowerCase();
      items.forEach(function (item) { item.hidden = words && item.dataset.text.indexOf(words) < 0; });
    });
    filter.addEventListener("keydown", function (event) {
      var shown = visible();
      if (event.key === "Enter" && !event.ctrlKey && !event.metaKey) {
        event.preventDefault();  // never submit the form from the filter
        if (shown.length === 1) {
          var box = shown[0].querySelector("input");
          box.click();
          filter.value = "";
          filter.dispatchEvent(new Event("input"));
        }
      } else if (event.key === "ArrowDown" && shown.length) {
        event.preventDefault();
        shown[0].querySelector("input").focus();
      }
    });
  });
})();

// autofocus is honoured on form controls; a link (a notice type's button) needs a hand.
// data-console="ready" says the shortcuts listen (a browser test waits for it).
document.addEventListener("DOMContentLoaded", function () {
  document.documentElement.dataset.console = "ready";
  var wanted = document.querySelector(".console [autofocus]");
  if (wanted && (document.activeElement === document.body || !document.activeElement)) {
    wanted.focus();
  }
});
