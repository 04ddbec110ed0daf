// Projected free beds per region for the next 7 days, with each region's warning threshold dashed.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var el = document.getElementById("capacity-chart"), src = document.getElementById("capacity-data");
    if (!el || !src || !window.echarts) return;
    var data = JSON.parse(src.textContent), series = [];
    data.series.forEach(function (s) {
      series.push({ name: s.name, type: "line", data: s.free, smooth: false, symbolSize: 7, label: { show: true } });
      series.push({ name: s.name + " " + el.dataset.thresholdLabel, type: "line", data: data.dates.map(function () { return s.threshold; }),
        lineStyle: { type: "dashed", width: 1 }, symbol: "none", itemStyle: { color: "#c62828" } });
    });
    var chart = window.echarts.init(el);
    chart.setOption({
      title: { text: el.dataset.title, left: 10, top: 6, textStyle: { fontSize: 14 } },
      tooltip: { trigger: "axis" }, legend: { top: 6, right: 10 },
      grid: { left: 50, right: 20, top: 50, bottom: 30 },
      xAxis: { type: "category", data: data.dates }, yAxis: { type: "value", minInterval: 1 },
      series: series
    });
    window.addEventListener("resize", function () { chart.resize(); });
  });
})();
