// Draws every <canvas data-labels data-values> as a bar chart; pages stay free of inline script.
document.querySelectorAll("canvas[data-labels][data-values]").forEach(function (canvas) {
  new Chart(canvas, {
    type: canvas.dataset.type || "bar",
    data: {
      labels: JSON.parse(canvas.dataset.labels),
      datasets: [{ data: JSON.parse(canvas.dataset.values), backgroundColor: "#2f6f8f" }],
    },
    options: { plugins: { legend: { display: false } }, maintainAspectRatio: false,
               animation: false, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
  });
});
