// The planner's results as text: `longtrain plan`'s report (the chosen layout, its memory per
// category against the budget, the estimated step time and MFU, the runners-up and why they
// lost; or, when nothing fits, the shortfall and the levers), and the one line `longtrain
// train` logs under `parallel.mode: auto`.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "trainer/config.h"
#include "trainer/planner.h"

namespace lt {

// `top`: how many runners-up to list in each of the two lists (those that fit, those that do
// not).
std::string format_plan(const Config& base, const Plan& plan, std::size_t top);

// The report when plan.fits() is false: the leanest layout's memory, how much is missing and
// what would help (`levers`, from levers_for).
std::string format_no_fit(const Config& base, const Plan& plan, const std::vector<Lever>& levers);

// "planner: tp 1 cp 1 dp 4 zero 0 micro_batch 4 recompute none; predicted peak 52.3 MiB per rank
// (budget 3.1 GiB), estimated step 58 ms"
std::string format_plan_choice(const Config& base, const Plan& plan);

}  // namespace lt
