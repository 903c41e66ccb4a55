"""The Slack app manifest asks for exactly the scopes the engine's Web API calls need: every
`WebClient` method the package calls is in the table below (a new call fails here until its
scope is written down), and the manifest's bot scopes are the table's for those calls."""

import ast
from pathlib import Path

import yaml
from slack_sdk.web.async_client import AsyncWebClient

ROOT = Path(__file__).parents[2]
MANIFEST = ROOT / "deploy" / "slack" / "manifest.yaml"

# Slack's documented scopes per method (https://api.slack.com/methods). `views.open` needs
# none: the trigger id of a click is the permission.
SCOPES: dict[str, set[str]] = {
    "chat_postMessage": {"chat:write"},
    "chat_update": {"chat:write"},
    "chat_postEphemeral": {"chat:write"},
    "conversations_history": {"channels:history", "groups:history"},
    "views_open": set(),
    "users_info": {"users:read"},
    "conversations_replies": {"channels:history", "groups:history"},
    "reactions_add": {"reactions:write"},
}
WEB_API_METHODS = {
    name
    for name in dir(AsyncWebClient)
    if not name.startswith("_") and callable(getattr(AsyncWebClient, name))
} - {"api_call"}


def called_methods() -> dict[str, list[str]]:
    """Each Web API method the package calls, with where."""
    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / "alert_engine").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in WEB_API_METHODS
                and "_" in node.func.attr
            ):
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                found.setdefault(node.func.attr, []).append(where)
    return found


def test_the_scan_finds_the_calls_it_is_meant_to() -> None:
    # A control: the scan sees the engine's calls (it could pass by finding none).
    assert {"chat_postMessage", "chat_update", "chat_postEphemeral", "views_open"} <= set(
        called_methods()
    )


def test_every_web_api_call_has_its_scopes_written_down() -> None:
    unknown = {name: where for name, where in called_methods().items() if name not in SCOPES}
    assert unknown == {}, f"add these methods' scopes to SCOPES: {unknown}"


def test_the_manifest_asks_for_exactly_the_scopes_the_calls_need() -> None:
    manifest = yaml.safe_load(MANIFEST.read_text())
    needed = set().union(*(SCOPES[name] for name in called_methods()))
    assert sorted(manifest["oauth_config"]["scopes"]["bot"]) == sorted(needed)
    # Private channels too: a card there is found and read back with groups:history.
    assert "groups:history" in needed
    assert "user" not in manifest["oauth_config"]["scopes"]


def test_the_manifest_sends_clicks_to_the_interactivity_endpoint() -> None:
    manifest = yaml.safe_load(MANIFEST.read_text())
    interactivity = manifest["settings"]["interactivity"]
    assert interactivity["is_enabled"] is True
    assert interactivity["request_url"].startswith("https://")
    assert interactivity["request_url"].endswith("/slack/interactions")
    assert manifest["settings"]["socket_mode_enabled"] is False
    assert manifest["features"]["bot_user"]["display_name"]
