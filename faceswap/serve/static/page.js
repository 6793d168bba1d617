// The page works without this file; with it, a file can be dropped anywhere on the form, a file over
// the size limit is refused before it is sent, and the page says that the check is running.
(function () {
  "use strict";
  var form = document.getElementById("upload");
  if (!form) { return; }
  var input = document.getElementById("file");
  var drop = document.getElementById("drop");
  var status = document.getElementById("status");
  var button = document.getElementById("check");
  var maxBytes = parseInt(form.getAttribute("data-max-bytes"), 10);
  var maxLabel = form.getAttribute("data-max-label");

  function tooLarge(file) {
    return file && maxBytes > 0 && file.size > maxBytes;
  }

  function send() {
    var file = input.files && input.files[0];
    if (!file) { return; }
    if (tooLarge(file)) {
      status.textContent = "This file is larger than this page accepts (" + maxLabel + ").";
      status.className = "status error";
      return;
    }
    status.className = "status";
    status.textContent = "Checking " + file.name + " \u2026 a video takes a few seconds.";
    button.disabled = true;
    form.submit();
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    send();
  });
  input.addEventListener("change", send);
  ["dragenter", "dragover"].forEach(function (name) {
    drop.addEventListener(name, function (event) { event.preventDefault(); drop.classList.add("over"); });
  });
  ["dragleave", "drop"].forEach(function (name) {
    drop.addEventListener(name, function (event) { event.preventDefault(); drop.classList.remove("over"); });
  });
  drop.addEventListener("drop", function (event) {
    if (event.dataTransfer && event.dataTransfer.files.length) {
      input.files = event.dataTransfer.files;
      send();
    }
  });
}());
