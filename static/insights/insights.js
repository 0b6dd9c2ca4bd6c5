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

  // Leave the range form's empty fields out of its URL, and send dates with
  // range=custom instead of the preset that was shown. The server reads
  // dates as a custom range either way, so without this script the form
  // still works, with a longer URL.
  function cleanRangeQuery(event) {
    const data = event.formData;
    for (const [name, value] of [...data.entries()]) {
      if (value === "") data.delete(name);
    }
    if (data.has("start") || data.has("end")) {
      data.set("range", "custom");
    } else if (data.get("range") === "custom") {
      data.delete("range");
    }
  }

  const COLOURS = ["#2457c5", "#d1495b", "#edae49", "#00798c", "#66a182", "#8d6cab", "#30343f", "#f08a4b"];

  // Unit of each chart's value axis, by chart name. Charts not listed count
  // requests, errors or tokens.
  const VALUE_AXES = {
    latency: "milliseconds",
    cost_by_model: "usd",
    cost_by_application: "usd",
    cost_ranking: "usd",
  };

  // Label only the 1, 2 and 5 steps of each power of ten on a log axis.
  function logTickLabel(value) {
    const mantissa = value / 10 ** Math.floor(Math.log10(value));
    if (![1, 2, 5].some((step) => Math.abs(mantissa - step) < 1e-9)) return "";
    return value.toLocaleString("en-US");
  }

  // Dollar ticks with as many decimals as the tick step needs, so an axis of
  // tiny costs does not read "$0" on every tick and a step reads evenly.
  function usdTickLabel(value, index, ticks) {
    const step = ticks.length > 1 ? Math.abs(ticks[1].value - ticks[0].value) : Math.abs(value);
    const decimals = step > 0 ? Math.min(10, Math.max(0, -Math.floor(Math.log10(step)))) : 0;
    return "$" + value.toLocaleString("en-US", { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
  }

  function valueAxis(unit, stacked) {
    if (unit === "milliseconds") {
      // p95 latency can be a hundred times the time to first token, which
      // a linear axis would flatten to a line along zero.
      return {
        type: "logarithmic",
        title: { display: true, text: "Milliseconds (log scale)" },
        ticks: { autoSkip: false, callback: logTickLabel },
      };
    }
    if (unit === "usd") {
      return {
        stacked,
        beginAtZero: true,
        title: { display: true, text: "USD" },
        ticks: { callback: usdTickLabel },
      };
    }
    return { stacked, beginAtZero: true, ticks: { precision: 0 } };
  }

  function drawChart(canvas) {
    const source = document.getElementById(canvas.dataset.chart);
    if (!source || !window.Chart) return;
    const data = JSON.parse(source.textContent);
    const kind = data.kind;
    const horizontal = kind === "hbar";
    const stacked = kind === "stacked";
    const unit = VALUE_AXES[canvas.dataset.chartName] || "count";
    const datasets = data.datasets.map((dataset, index) => ({
      label: dataset.label,
      data: dataset.data,
      backgroundColor: COLOURS[index % COLOURS.length],
      borderColor: COLOURS[index % COLOURS.length],
      borderWidth: kind === "line" ? 2 : 0,
      pointRadius: kind === "line" ? 2 : 0,
      // A bucket without requests has no latency: leave a gap, not a line across it.
      spanGaps: false,
    }));
    // At most one time label per 140 pixels, so that the 16-character
    // labels do not overlap on a phone.
    const labelLimit = Math.max(2, Math.min(6, Math.floor(canvas.parentElement.clientWidth / 140)));
    // A few short labels (HTTP statuses, application names) are all shown.
    const fewLabels = data.labels.length <= 12;
    const categoryAxis = {
      stacked,
      ticks: fewLabels
        ? { maxRotation: 0, autoSkip: false }
        : { maxRotation: 0, autoSkip: true, autoSkipPadding: 16, maxTicksLimit: labelLimit },
    };
    const values = valueAxis(unit, stacked);
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
        scales: horizontal ? { x: values, y: { stacked } } : { x: categoryAxis, y: values },
      },
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    applyBrowserTimezone();
    document.querySelector(".range-form")?.addEventListener("formdata", cleanRangeQuery);
    document.querySelectorAll("canvas[data-chart]").forEach(drawChart);
  });
})();
