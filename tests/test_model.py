"""The one model definition: torchvision's layout, loading, and the zero-shot ImageNet head."""

import torch
from torchvision.models import vgg11, vgg16

from animals.model import ModelSpec, build_model, load_model
from animals.zero_shot import animal_probabilities
from tests.support import TINY_SPEC


def test_full_vgg16_has_torchvision_keys_and_shapes():
    ours = build_model(ModelSpec(arch="vgg16", num_classes=10)).state_dict()
    theirs = vgg16(weights=None, num_classes=10).state_dict()
    assert {key: value.shape for key, value in ours.items()} == {key: value.shape for key, value in theirs.items()}


def test_small_vgg_keeps_the_layout_with_fewer_channels():
    small = build_model(TINY_SPEC)
    assert small.state_dict().keys() == vgg16(weights=None).state_dict().keys()
    assert small(torch.rand(2, 3, 224, 224)).shape == (2, 10)


def test_load_model_reproduces_the_saved_network(tmp_path):
    model = build_model(TINY_SPEC).eval()
    torch.save(model.state_dict(), tmp_path / "model.pt")
    loaded = load_model(TINY_SPEC, tmp_path / "model.pt")
    batch = torch.rand(3, 3, 224, 224)
    with torch.inference_mode():
        assert torch.equal(model(batch), loaded(batch))


def test_zero_shot_head_gives_animal_probabilities_of_the_imagenet_logits(tmp_path):
    """The zero-shot model is the ImageNet network's state dict, unchanged, with animals.zero_shot on top."""
    torch.manual_seed(0)
    imagenet = vgg11(weights=None).eval()
    torch.save(imagenet.state_dict(), tmp_path / "vgg11.pth")
    spec = ModelSpec(arch="vgg11", head="imagenet-groups")
    zero_shot = load_model(spec, tmp_path / "vgg11.pth")
    batch = torch.rand(2, 3, 224, 224)
    with torch.inference_mode():
        assert torch.equal(zero_shot(batch).softmax(dim=1), animal_probabilities(imagenet(batch)))
