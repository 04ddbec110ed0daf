// The transmission chain (case and cluster pages). Positions come from the server (by generation), so the
// chart never runs a force layout. Small graphs use ECharts' graph series (labels, hover adjacency); large
// ones draw nodes as a large scatter and links as large lines, both rendered progressively.
(function () {
  "use strict";
  var BIG = 1500;
  function init() {
    var el = document.getElementById("chain");
    var src = document.getElementById("chain-data");
    if (!el || !src || typeof echarts === "undefined") return;
    var data = JSON.parse(src.textContent);
    var colors = ["#c62828", "#e08a00", "#1f5fa8", "#5b6675", "#9aa5b1"];
    var chart = echarts.init(el, null, { renderer: "canvas" });
    var nodes = data.nodes, byId = {};
    nodes.forEach(function (n) { byId[n.id] = n; });
    var option;
    if (nodes.length <= BIG) {
      option = {
        animation: nodes.length < 300,
        color: colors,
        tooltip: { formatter: function (p) { return p.dataType === "node" ? p.data.name : ""; } },
        legend: [{ data: data.categories.map(function (c) { return c.name; }), bottom: 0 }],
        series: [{
          type: "graph", layout: "none", roam: true, draggable: false,
          data: nodes.map(function (n) { return Object.assign({}, n, { label: { show: n.category < 3 && nodes.length < 400 } }); }),
          links: data.links, categories: data.categories,
          edgeSymbol: ["none", "arrow"], edgeSymbolSize: 5,
          label: { position: "right", fontSize: 11 },
          lineStyle: { color: "#9aa5b1", width: 1, curveness: 0 },
          emphasis: { focus: "adjacency", lineStyle: { width: 2 } }
        }]
      };
    } else {
      var series = data.categories.map(function (c, i) {
        return { type: "scatter", name: c.name, large: true, largeThreshold: 500, progressive: 2000,
                 symbolSize: i < 3 ? 8 : 4, itemStyle: { color: colors[i] },
                 data: nodes.filter(function (n) { return n.category === i; })
                            .map(function (n) { return { value: [n.x, -n.y], name: n.name, url: n.url }; }) };
      });
      series.unshift({ type: "lines", coordinateSystem: "cartesian2d", large: true, largeThreshold: 500, progressive: 4000,
                       lineStyle: { color: "#b8c0cc", width: 0.5, opacity: 0.6 }, silent: true,
                       data: data.links.map(function (l) { var a = byId[l.source], b = byId[l.target];
                         return { coords: [[a.x, -a.y], [b.x, -b.y]] }; }) });
      option = {
        animation: false,
        tooltip: { trigger: "item", formatter: function (p) { return p.data && p.data.name ? p.data.name : ""; } },
        legend: { data: data.categories.map(function (c) { return c.name; }), bottom: 0 },
        xAxis: { show: false, scale: true }, yAxis: { show: false, scale: true },
        grid: { left: 10, right: 10, top: 10, bottom: 40 },
        dataZoom: [{ type: "inside", xAxisIndex: 0 }, { type: "inside", yAxisIndex: 0 }],
        series: series
      };
    }
    chart.setOption(option);
    chart.on("click", function (p) { if (p.data && p.data.url) window.location.href = p.data.url; });
    window.addEventListener("resize", function () { chart.resize(); });
    el.dataset.ready = "1";
  }
  document.addEventListener("DOMContentLoaded", init);
})();
