// Gardien console: the only script. A form sent once stays sent (no double submission).
document.addEventListener("submit", (event) => {
  const button = event.target.querySelector("button[type=submit]");
  if (button) { setTimeout(() => { button.disabled = true; }, 0); }
});
