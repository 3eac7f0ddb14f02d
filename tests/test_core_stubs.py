"""gbsip/_core.pyi tells the truth about gbsip._core, both ways.

Every name the binding defines — in its C method, getset and member tables,
struct-sequence fields, module functions and module constants, read from the
sources in csrc/python/ so that a C name the stub lacks is caught — is
declared in the stub, under the class its table belongs to; and every name
the stub declares exists at runtime in the built module.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import gbsip
from gbsip import _core

ROOT = Path(__file__).resolve().parent.parent
BINDING = ROOT / "csrc" / "python"

# Runtime attributes every struct sequence type has; not the binding's names.
STRUCTSEQ_EXTRAS = {"n_fields", "n_sequence_fields", "n_unnamed_fields"}


def stub_path() -> Path:
    """The installed stub (what a type checker sees), else the source tree's."""
    installed = Path(gbsip.__file__).parent / "_core.pyi"
    return installed if installed.exists() else ROOT / "gbsip" / "_core.pyi"


def stub_names() -> tuple[set[str], dict[str, set[str]]]:
    """Module-level names and each class's own names, from the stub."""
    tree = ast.parse(stub_path().read_text(encoding="utf-8"))
    module: set[str] = set()
    classes: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            module.add(node.name)
            names = classes.setdefault(node.name, set())
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    names.add(item.name)
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    names.add(item.target.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            module.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            module.add(node.target.id)
    return module, classes


def _table(source: str, kind: str, name: str) -> list[str]:
    """The quoted names of the entries of one C table of this kind."""
    m = re.search(rf"static {kind} {re.escape(name)}\[\] = \{{(.*?)\}};", source, re.S)
    assert m, f"table {name} not found"
    return re.findall(r'\{\s*"([A-Za-z_]\w*)"\s*,', m.group(1))


def binding_names() -> tuple[set[str], dict[str, set[str]]]:
    """Module-level names and each class's names, from the C sources."""
    module: set[str] = set()
    classes: dict[str, set[str]] = {}
    for path in sorted(BINDING.glob("*.c")):
        src = path.read_text(encoding="utf-8")
        # tables by class: static types (.tp_name / .tp_methods ...) and
        # heap types (PyType_Spec .name / slots {Py_tp_methods, T})
        for body in re.findall(r"static PyTypeObject \w+ = \{(.*?)\n\};", src, re.S):
            cls = re.search(r'\.tp_name = "[\w.]*?(\w+)"', body).group(1)
            for kind, field in (("PyMethodDef", "methods"), ("PyGetSetDef", "getset"),
                                ("PyMemberDef", "members")):
                t = re.search(rf"\.tp_{field} = (\w+)", body)
                if t:
                    classes.setdefault(cls, set()).update(_table(src, kind, t.group(1)))
        for spec in re.findall(r"static PyType_Spec \w+ = \{(.*?)\n\};", src, re.S):
            cls = re.search(r'\.name = "[\w.]*?(\w+)"', spec).group(1)
            slots = re.search(r"\.slots = (\w+)", spec).group(1)
            body = re.search(rf"static PyType_Slot {slots}\[\] = \{{(.*?)\n\}};", src, re.S)
            for kind, field in (("PyMethodDef", "methods"), ("PyGetSetDef", "getset"),
                                ("PyMemberDef", "members")):
                t = re.search(rf"\{{Py_tp_{field}, (\w+)\}}", body.group(1))
                if t:
                    classes.setdefault(cls, set()).update(_table(src, kind, t.group(1)))
        # struct sequences: fields_table -> the type whose desc uses it
        for desc in re.findall(r"PyStructSequence_Desc \w+ = \{(.*?)\};", src, re.S):
            cls = re.search(r'"[\w.]*?(\w+)"', desc).group(1)
            fields = re.search(r"(\w+_fields)", desc).group(1)
            classes.setdefault(cls, set()).update(
                _table(src, "PyStructSequence_Field", fields))
        for table in re.findall(r"PyModule_AddFunctions\(\w+, (\w+)\)", src):
            module.update(_table(src, "PyMethodDef", table))
        module.update(re.findall(r'PyModule_Add(?:IntConstant|Object|ObjectRef)\(\w+, "(\w+)"', src))
    return module, classes


STUB_MODULE, STUB_CLASSES = stub_names()
C_MODULE, C_CLASSES = binding_names()


def test_the_c_sources_were_read() -> None:
    """The parser of the C tables found the binding's types and functions."""
    assert {"Fleet", "RegistrarCore", "Message", "Request", "Headers", "DigestNonces",
            "CSeq", "Via"} <= set(C_CLASSES)
    assert {"parse", "digest_response", "LENIENT_ALL", "ConcurrentUseError"} <= C_MODULE
    assert {"pump_udp", "udp_attach", "set_socket", "sim_stats"} <= C_CLASSES["Fleet"]


@pytest.mark.parametrize("name", sorted(C_MODULE))
def test_module_name_of_the_binding_is_in_the_stub(name: str) -> None:
    """A module-level function or constant the C code adds is declared in _core.pyi."""
    assert name in STUB_MODULE


@pytest.mark.parametrize("cls,name", sorted((c, n) for c, ns in C_CLASSES.items() for n in ns))
def test_class_name_of_the_binding_is_in_the_stub(cls: str, name: str) -> None:
    """A method, property or field in a C table is declared in that class of _core.pyi."""
    assert cls in STUB_CLASSES, f"class {cls} missing from the stub"
    assert name in STUB_CLASSES[cls], f"{cls}.{name} missing from the stub"


@pytest.mark.parametrize("name", sorted(STUB_MODULE))
def test_module_name_of_the_stub_exists(name: str) -> None:
    """Every module-level name the stub declares exists in the built module."""
    assert hasattr(_core, name)


@pytest.mark.parametrize("cls,name", sorted((c, n) for c, ns in STUB_CLASSES.items()
                                            for n in ns))
def test_class_name_of_the_stub_exists(cls: str, name: str) -> None:
    """Every method and property the stub declares exists on the runtime class (attributes
    an exception only gets per instance, like SIPParseError.line, are set by the binding
    when it raises)."""
    runtime = getattr(_core, cls)
    if issubclass(runtime, BaseException):
        return
    assert hasattr(runtime, name), f"{cls}.{name} does not exist at runtime"


@pytest.mark.parametrize("name", sorted(n for n in dir(_core) if not n.startswith("_")))
def test_runtime_name_is_in_the_stub(name: str) -> None:
    """Nothing public in the built module is missing from the stub."""
    assert name in STUB_MODULE


@pytest.mark.parametrize("cls", sorted(STUB_CLASSES))
def test_runtime_class_members_are_in_the_stub(cls: str) -> None:
    """Nothing public a runtime class defines itself is missing from its stub class."""
    runtime = getattr(_core, cls)
    own = {n for n in vars(runtime) if not n.startswith("_")} - STRUCTSEQ_EXTRAS
    assert own <= STUB_CLASSES[cls]
