"""The one place that talks to OR-Tools' LP layer (model_builder helper + GLOP), so an OR-Tools
upgrade touches this file only. Columns are added as whole NumPy arrays."""
from __future__ import annotations

import numpy as np
from ortools.linear_solver.python import model_builder_helper as mbh


class LPError(RuntimeError):
    """The solver did not return an optimal solution."""


def maximize(lower: np.ndarray, upper: np.ndarray, objective: np.ndarray,
             rows: list[tuple[np.ndarray, np.ndarray, float, float]]) -> np.ndarray:
    """Maximise objective . x subject to lower <= x <= upper and, for each row
    (columns, coefficients, lb, ub), lb <= sum coefficients * x[columns] <= ub.
    Returns the column values (floats) of an optimal vertex found by GLOP."""
    n = len(objective)
    if n == 0:
        return np.zeros(0)
    model = mbh.ModelBuilderHelper()
    columns = model.add_var_array_with_bounds(
        np.asarray(lower, np.float64), np.asarray(upper, np.float64), np.zeros(n, dtype=bool), "")
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
