import pytest
import torch

from residq.formats import quantize
from residq.formats.spec import FormatSpec
from residq.methods.quantized_layer import QuantizedLayer
from residq.nn.quant_linear import QuantLinear

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


@pytest.mark.parametrize("act", [None, FormatSpec(kind="nvfp4"), FormatSpec(kind="fp8", granularity="token")])
def test_cpu_and_gpu_reference_paths_agree(act):
    torch.manual_seed(0)
    layer = QuantizedLayer(weight=quantize(torch.randn(96, 256), FormatSpec(kind="nvfp4")), act_spec=act)
    module = QuantLinear.from_quantized(layer, 256)
    x = torch.randn(33, 256)
    cpu = module(x)
    gpu = module.cuda()(x.cuda()).cpu()
    assert torch.allclose(cpu, gpu, rtol=1e-4, atol=1e-4)
