// Declarations only (see README.md): nothing of gloo/common/error.h is used by ProcessGroupGloo.hpp.
#pragma once
