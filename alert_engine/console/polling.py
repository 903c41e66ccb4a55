"""The script the console's live pages share: poll the page's JSON view and say when the page
was last brought up to date (or why not). Each page adds what it does with the answer."""

# `poll(source, show)`: every `source.dataset.pollSeconds` seconds, fetch `source.dataset.json`
# and hand the answer to `show`; an error, in the fetch or in `show`, is shown in #updated and
# the next poll tries again.
POLLING_SCRIPT = """
const updated = document.getElementById("updated");
function poll(source, show) {
  async function refresh() {
    try {
      const response = await fetch(source.dataset.json, {headers: {Accept: "application/json"}});
      if (!response.ok) {
        updated.textContent = "not updated: HTTP " + response.status;
        return;
      }
      show(await response.json());
      updated.textContent = "updated " + new Date().toLocaleTimeString();
    } catch (error) {
      updated.textContent = "not updated: " + error;
    }
  }
  setInterval(refresh, Number(source.dataset.pollSeconds) * 1000);
}
"""
