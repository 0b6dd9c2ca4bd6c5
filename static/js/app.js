// Copy buttons: <button data-copy-target="#id"> copies the element's text.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy-target]");
  if (!button) return;
  const source = document.querySelector(button.dataset.copyTarget);
  if (!source) return;
  const text = source.value ?? source.textContent;
  navigator.clipboard.writeText(text.trim()).then(
    () => { button.textContent = "Copied"; },
    () => { button.textContent = "Copy failed: select the text and copy it"; },
  );
});

// Modal dialogs: an htmx swap into #modal opens it; [data-close-modal] closes it.
document.addEventListener("htmx:afterSwap", (event) => {
  if (event.detail.target.id === "modal") event.detail.target.showModal();
});
document.addEventListener("click", (event) => {
  if (event.target.closest("[data-close-modal]")) {
    document.getElementById("modal").close();
  }
});
