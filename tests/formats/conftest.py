"""A fixture running a test once per representative format spec."""

import pytest

from residq.formats import FormatSpec

REPRESENTATIVE_SPECS = (
    FormatSpec(kind="int", bits=2, symmetric=True, granularity="group", group_size=8),
    FormatSpec(kind="int", bits=3, symmetric=False, granularity="channel"),
    FormatSpec(kind="int", bits=4, symmetric=True, granularity="group", group_size=8),
    FormatSpec(kind="int", bits=4, symmetric=False, granularity="group", group_size=8),
    FormatSpec(kind="int", bits=4, symmetric=True, granularity="tensor"),
    FormatSpec(kind="int", bits=8, symmetric=True, granularity="token"),
    FormatSpec(kind="int", bits=8, symmetric=False, granularity="group", group_size=16),
    FormatSpec(kind="fp8", granularity="tensor"),
    FormatSpec(kind="fp8", granularity="channel"),
    FormatSpec(kind="nvfp4"),
    FormatSpec(kind="mxfp4"),
    FormatSpec(kind="mxfp4", mx_exponent="floor_ocp"),
)


def _spec_id(spec: FormatSpec) -> str:
    return spec.describe() + ("-floor" if spec.mx_exponent == "floor_ocp" else "")


@pytest.fixture(params=REPRESENTATIVE_SPECS, ids=_spec_id)
def any_spec(request) -> FormatSpec:
    return request.param
