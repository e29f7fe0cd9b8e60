import json

from perfsim.hardware import DEVICE_KINDS


def test_hardware_schema_covers_every_kind(cli):
    result = cli("schema", "hardware")
    assert result.code == 0
    schema = json.loads(result.out)
    tags = set(schema["discriminator"]["mapping"])
    assert tags == {*DEVICE_KINDS, "system"}
    accelerator = schema["$defs"]["Accelerator"]
    assert accelerator["additionalProperties"] is False
    assert {"name", "vendor", "clock", "compute", "memory"} <= set(accelerator["required"])
