// The landing page: nothing it needs is in script; this marks the plan a link to the sign-up
// carries so keyboard users land on the form with it chosen.
(function () {
  "use strict";
  document.querySelectorAll(".plan .button").forEach(function (a) {
    a.addEventListener("click", function () { try { sessionStorage.setItem("kamiyo.plan", a.closest(".plan").dataset.plan); } catch (_) { /* private mode */ } });
  });
})();
