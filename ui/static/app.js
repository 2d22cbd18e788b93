// wharf's UI works without this script; it only adds copy buttons to the
// podman lines marked data-copy.
"use strict";
document.querySelectorAll("[data-copy]").forEach(function (el) {
  if (!navigator.clipboard) return;
  var b = document.createElement("button");
  b.type = "button";
  b.className = "copy";
  b.textContent = "Copy";
  b.addEventListener("click", function () {
    navigator.clipboard.writeText(el.textContent).then(function () {
      b.textContent = "Copied";
      setTimeout(function () { b.textContent = "Copy"; }, 1500);
    });
  });
  el.parentNode.insertAdjacentElement("afterend", b);
});
