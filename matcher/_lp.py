"""The one place that talks to OR-Tools' LP layer (model_builder helper + GLOP), so an OR-Tools
upgrade touches this file only. Columns are added as whole NumPy arrays."""

from __future__ import annotations

from typing import TypeAlias

import numpy as np
import numpy.typing as npt
from ortools.linear_solver.python import model_builder_helper as mbh

# (columns, coefficients, lb, ub): lb <= sum coefficients * x[columns] <= ub
Row: TypeAlias = tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], float, float]


class LPError(RuntimeError):
    """The solver did not return an optimal solution."""


def maximize(
    lower: npt.NDArray[np.float64],
    upper: npt.NDArray[np.float64],
    objective: npt.NDArray[np.float64],
    rows: list[Row],
) -> npt.NDArray[np.float64]:
    """Maximise objective . x subject to lower <= x <= upper and, for each row
    (columns, coefficients, lb, ub), lb <= sum coefficients * x[columns] <= ub.
    Returns the column values (floats) of an optimal vertex found by GLOP."""
    n = len(objective)
    if n == 0:
        return np.zeros(0)
    model = mbh.ModelBuilderHelper()
    low, high = np.asarray(lower, np.float64), np.asarray(upper, np.float64)
    integer = np.zeros(n, dtype=bool)
    # OR-Tools' generated stub types these `ndarray[float64]` and `ndarray[bool]`, putting the
    # dtype where NumPy's ndarray takes the shape, so no real array matches it.
    columns = model.add_var_array_with_bounds(low, high, integer, "")  # type: ignore[arg-type]
    model.set_objective_coefficients(columns.tolist(), np.asarray(objective, np.float64).tolist())
    model.set_maximize(True)
    add_term = model.add_term_to_constraint
    for cols, coefs, lb, ub in rows:
        row = model.add_linear_constraint()
        model.set_constraint_lower_bound(row, float(lb))
        model.set_constraint_upper_bound(row, float(ub))
        for col, coef in zip(columns[cols].tolist(), np.asarray(coefs, np.float64).tolist()):
            add_term(row, col, coef)
    solver = mbh.ModelSolverHelper("glop")
    solver.solve(model)
    status = solver.status()
    if status != mbh.SolveStatus.OPTIMAL:
        raise LPError(f"GLOP did not find an optimal clearing: {status.name}")
    return np.asarray(solver.variable_values(), dtype=np.float64)
