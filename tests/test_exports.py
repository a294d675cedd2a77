"""The packages' public names: listed, loaded on first use, unknown ones refused."""
import pytest

import gpunet
import gpunet.distributed


@pytest.mark.parametrize("package", [gpunet, gpunet.distributed])
def test_every_public_name_loads_and_is_listed(package):
    for name in package.__all__:
        assert getattr(package, name) is not None
        assert name in dir(package)


@pytest.mark.parametrize("package, name", [(gpunet, "gpunet"),
                                           (gpunet.distributed, "gpunet.distributed")])
def test_an_unknown_name_is_an_attribute_error_naming_the_package(package, name):
    with pytest.raises(AttributeError, match=f"module '{name}' has no attribute 'nope'"):
        package.nope  # noqa: B018


@pytest.mark.parametrize("package", [gpunet, gpunet.distributed])
def test_dir_lists_the_public_names_and_no_helpers(package):
    listed = dir(package)
    assert set(package.__all__) <= set(listed)
    assert not {"annotations", "exports", "lazy_exports", "_exports"} & set(listed)
    for name in set(listed) - set(package.__all__):  # the dunders, and submodules loaded
        assert name.startswith("__") or getattr(package, name).__name__ == \
            f"{package.__name__}.{name}"
