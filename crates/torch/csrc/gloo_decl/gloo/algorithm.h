// Declarations only (see README.md): nothing of gloo/algorithm.h is used by ProcessGroupGloo.hpp.
#pragma once
