"""A deployed stack always runs with local mode off: template.yaml has no parameter that reaches the
setting, and no function's environment names it, so only the local runtime (which sets it in its
own process) can turn it on."""

import json

from infra.local.template import translate
from shared.settings import Settings

LOCAL_MODE = Settings.model_fields["local_mode"].alias or "local_mode"


def _environments(cfn: dict) -> list[dict]:
    functions = [r for r in cfn["Resources"].values() if r["Type"] == "AWS::Lambda::Function"]
    return [f.get("Properties", {}).get("Environment", {}).get("Variables", {}) for f in functions]


def test_no_function_environment_can_turn_local_mode_on():
    cfn = translate()
    environments = _environments(cfn)
    assert environments and all(env for env in environments)  # the check below sees real environments
    for env in environments:
        # Settings reads its variables case-insensitively.
        assert LOCAL_MODE.lower() not in {name.lower() for name in env}, env


def test_no_parameter_speaks_of_local_mode():
    cfn = translate()
    for name, parameter in cfn.get("Parameters", {}).items():
        words = (name + json.dumps(parameter)).lower().replace("_", "")
        assert "localmode" not in words and "local mode" not in words, name


def test_a_stack_deployed_with_every_parameter_set_to_true_is_not_in_local_mode(monkeypatch):
    strong = "k3Jq9wXz2Lm8Pn4Rv7TyQ2xqv8Zr4mN7"
    for env in _environments(translate()):
        for name in {*env, LOCAL_MODE}:
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():  # every Ref and GetAtt: whatever a deployer could give it
            given = {
                "ORDER_TOKEN_SECRET": strong,
                "SANDBOX_SECRET": strong,
                "WEBSOCKET_URL": "wss://a1b2c3.execute-api.us-east-1.amazonaws.com/live",  # an !Sub: a URL
                "DEFAULT_SHOP": "mer_" + "0" * 20,  # a merchant id, or Settings refuses it
            }.get(name, "true")
            monkeypatch.setenv(name, value if isinstance(value, str) else given)
        assert Settings().local_mode is False  # type: ignore[call-arg]
