// The dashboard asks the coach's API (through the app's own /bff/summary, which adds the
// session's access token) and shows what it answered.
(function () {
  var button = document.getElementById("refresh");
  var out = document.getElementById("api-result");
  if (!button || !out) return;
  button.addEventListener("click", function () {
    out.textContent = "Asking the API…";
    fetch("/bff/summary", { credentials: "same-origin" })
      .then(function (r) { return r.json().then(function (body) { return { ok: r.ok, status: r.status, body: body }; }); })
      .then(function (res) {
        if (res.status === 403) {
          out.textContent = "Your account may not use the API yet: ask an administrator for the member role.";
          return;
        }
        if (!res.ok) { out.textContent = "The API answered " + res.status + "."; return; }
        var s = res.body.summary;
        var over = s.categories.filter(function (c) { return c.budget_cents > 0 && c.percent > 100; })
          .map(function (c) { return c.category; });
        out.textContent = "The API confirms: " + s.categories.length + " categories, " +
          (over.length ? "over budget in " + over.join(", ") : "all within budget") + ".";
        out.setAttribute("data-ok", "true");
      })
      .catch(function () { out.textContent = "The API could not be reached."; });
  });
})();
