// Insights pages: pick the display timezone from the browser and draw charts.
(function () {
  "use strict";

  function applyBrowserTimezone() {
    const form = document.querySelector(".range-form");
    if (!form) return;
    const cookie = form.dataset.timezoneCookie;
    const browserZone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    const hasCookie = document.cookie.split("; ").some((c) => c.startsWith(cookie + "="));
    if (!hasCookie && browserZone) {
      document.cookie = `${cookie}=${encodeURIComponent(browserZone)}; path=/; max-age=31536000; SameSite=Lax`;
      if (form.dataset.tzFromUrl !== "true" && browserZone !== form.dataset.tz) {
        window.location.reload();
        return;
      }
    }
    const list = document.getElementById("timezones");
    if (list && Intl.supportedValuesOf) {
      for (const zone of Intl.supportedValuesOf("timeZone")) {
        const option = document.createElement("option");
        option.value = zone;
        list.appendChild(option);
      }
    }
  }

  const COLOURS = ["#2457c5", "#d1495b", "#edae49", "#00798c", "#66a182", "#8d6cab", "#30343f", "#f08a4b"];

  function drawChart(canvas) {
    const source = document.getElementById(canvas.dataset.chart);
    if (!source || !window.Chart) return;
    const data = JSON.parse(source.textContent);
    const kind = data.kind;
    const horizontal = kind === "hbar";
    const stacked = kind === "stacked";
    const datasets = data.datasets.map((dataset, index) => ({
      label: dataset.label,
      data: dataset.data,
      backgroundColor: COLOURS[index % COLOURS.length],
      borderColor: COLOURS[index % COLOURS.length],
      borderWidth: kind === "line" ? 2 : 0,
      pointRadius: kind === "line" ? 1.5 : 0,
      spanGaps: true,
    }));
    new window.Chart(canvas, {
      type: kind === "line" ? "line" : "bar",
      data: { labels: data.labels, datasets },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        indexAxis: horizontal ? "y" : "x",
        interaction: { mode: "index", intersect: false },
        plugins: { legend: { display: datasets.length > 1, position: "bottom" } },
        scales: {
          x: { stacked, ticks: { maxRotation: 0, autoSkip: true, autoSkipPadding: 16, maxTicksLimit: 6 } },
          y: { stacked, beginAtZero: true },
        },
      },
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    applyBrowserTimezone();
    document.querySelectorAll("canvas[data-chart]").forEach(drawChart);
  });
})();
