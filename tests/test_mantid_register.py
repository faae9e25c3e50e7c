"""phonon-ml mantid-register finds Mantid's user properties file as Mantid does and writes paths Poco reads back."""
from __future__ import annotations

from pathlib import PurePosixPath, PureWindowsPath

from phonon_ml_core.cli.mantid_register import properties_file_for, property_path, update_properties


def test_properties_file_per_platform():
    assert properties_file_for("posix", "/home/u", "/opt/mantid/bin/python") == \
        PurePosixPath("/home/u/.mantid/Mantid.user.properties")
    assert properties_file_for("nt", "C:\\Users\\u", "C:\\MantidInstall\\bin\\python.exe") == \
        PureWindowsPath("C:/MantidInstall/bin/Mantid.user.properties")  # the base directory, not the home


def test_windows_paths_written_with_forward_slashes():
    plugins = "C:\\Users\\u\\site-packages\\phonon_ml_core\\mantid_algorithms"
    new, changed = update_properties("datasearch.directories = C:/data\n", plugins)
    written = "user.python.plugins.directories = C:/Users/u/site-packages/phonon_ml_core/mantid_algorithms"
    assert changed and written in new
    assert "\\" not in new  # Poco's PropertyFileConfiguration would read "\U" as an escape
    again, changed = update_properties(new, plugins)
    assert not changed and again == new
    assert property_path("D:\\a\\b") == "D:/a/b"
    removed, changed = update_properties(new, plugins, remove=True)
    assert changed and "mantid_algorithms" not in removed
