// Coverage by region on the campaign board: sampled vs not yet sampled, stacked. Data from json_script.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var el = document.getElementById("coverage-chart"), src = document.getElementById("coverage-data");
    if (!el || !src || typeof echarts === "undefined") return;
    var d = JSON.parse(src.textContent);
    if (!d.names.length) { el.style.display = "none"; return; }
    el.style.height = "260px";
    var zh = document.documentElement.lang === "zh-CN";
    var chart = echarts.init(el);
    chart.setOption({
      tooltip: {trigger: "axis"}, legend: {},
      grid: {left: 60, right: 20, top: 40, bottom: 40},
      xAxis: {type: "category", data: d.names}, yAxis: {type: "value"},
      series: [
        {name: zh ? "已采样" : "Sampled", type: "bar", stack: "p", data: d.sampled, itemStyle: {color: "#2f7d4f"}},
        {name: zh ? "未采样" : "Not yet sampled", type: "bar", stack: "p", data: d.untested, itemStyle: {color: "#c0392b"}}
      ]
    });
    window.addEventListener("resize", function () { chart.resize(); });
  });
})();
