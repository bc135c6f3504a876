"""Old path of the tabular loader: `latentvar.data.tabular.load_tabular`."""

from latentvar.data.tabular import load_tabular

__all__ = ["load_tabular"]
