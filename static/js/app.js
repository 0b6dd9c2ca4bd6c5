// Copy buttons: <button data-copy-target="#id"> copies the element's text.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy-target]");
  if (!button) return;
  const source = document.querySelector(button.dataset.copyTarget);
  if (!source) return;
  const text = source.value ?? source.textContent;
  if (source.select) source.select();
  navigator.clipboard.writeText(text.trim()).then(
    () => { button.textContent = "Copied"; },
    () => { button.textContent = "Copy failed: select the text and copy it"; },
  );
});

// Modal dialogs: an htmx swap into #modal opens it; [data-close-modal] or the
// "close-modal" event (sent by the server in HX-Trigger) closes it.
function closeModal() {
  const modal = document.getElementById("modal");
  if (modal && modal.open) modal.close();
}
document.addEventListener("htmx:afterSwap", (event) => {
  const target = event.detail.target;
  if (target.id === "modal" && !target.open) target.showModal();
});
document.addEventListener("click", (event) => {
  const closer = event.target.closest("[data-close-modal]");
  if (!closer) return;
  const modal = document.getElementById("modal");
  // Inside the dialog, Cancel only closes it; on a full page it is a link.
  if (modal && modal.open && modal.contains(closer)) {
    event.preventDefault();
    closeModal();
  }
});
document.addEventListener("close-modal", closeModal);
document.addEventListener("DOMContentLoaded", () => {
  const modal = document.getElementById("modal");
  if (modal) modal.addEventListener("close", () => { modal.replaceChildren(); });

  // A page that shows a one-time secret replaces its history entry, so that
  // reloading or going back loads the key list instead of the secret.
  const replaced = document.querySelector("[data-replace-url]");
  if (replaced) history.replaceState(null, "", replaced.dataset.replaceUrl);
});

// Formsets: <button data-add-form-row="PREFIX"> appends a copy of
// <template id="PREFIX-empty-row"> and counts it in PREFIX-TOTAL_FORMS.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-add-form-row]");
  if (!button) return;
  const prefix = button.dataset.addFormRow;
  const template = document.getElementById(`${prefix}-empty-row`);
  const total = document.getElementById(`id_${prefix}-TOTAL_FORMS`);
  const body = document.querySelector(`#provider-${prefix} tbody`);
  if (!template || !total || !body) return;
  const index = Number(total.value);
  body.insertAdjacentHTML("beforeend", template.innerHTML.replaceAll("__prefix__", index));
  total.value = index + 1;
  body.lastElementChild.querySelector("input")?.focus();
});

// Enter in the picker's search box searches (htmx) instead of submitting
// the attach form with whatever is ticked.
document.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && event.target.matches("#key-picker input[type=search]")) {
    event.preventDefault();
  }
});

// An htmx request whose session expired ends on the sign-in page; load that
// page in full instead of swapping it into a dialog or a table.
document.addEventListener("htmx:beforeSwap", (event) => {
  const url = event.detail.xhr.responseURL || "";
  if (new URL(url, location.href).pathname.startsWith("/accounts/login/")) {
    event.detail.shouldSwap = false;
    location.assign(url);
  }
});

// Key picker: say how many keys are ticked; ticked keys stay listed (and
// ticked) when the search or filter changes, which is otherwise invisible.
document.addEventListener("change", (event) => {
  const picker = event.target.closest("#key-picker");
  if (!picker || event.target.name !== "keys") return;
  const line = picker.querySelector("#picker-selection");
  if (!line) return;
  const count = picker.querySelectorAll("input[name=keys]:checked").length;
  line.textContent = count
    ? `${count} key${count === 1 ? "" : "s"} selected (kept when you search or filter)`
    : "";
});
