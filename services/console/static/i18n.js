// The console's labels: Chinese by default, English by the switch in the header (kept in localStorage). They are
// data, one table with each message's [zh, en] side by side (messages.json), so neither language can miss a key.
// I18N becomes { zh: {...}, en: {...} } (nested tables keep their shape) before the console draws its first page.
window.I18N = { zh: {}, en: {} };

function language(table, index) {
  return Object.fromEntries(Object.entries(table).map(([key, value]) =>
    [key, Array.isArray(value) ? value[index] : language(value, index)]));
}

window.I18N_READY = fetch("/static/messages.json")
  .then(response => response.json())
  .then(table => { window.I18N = { zh: language(table, 0), en: language(table, 1) }; });
