// docs/user-guide.md ends with the config reference that `longtrain config-reference` prints,
// generated from the schema; this test fails when a key, default or description changes
// without the guide being regenerated.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "trainer/config.h"

namespace lt {
namespace {

constexpr std::string_view kMarker = "<!-- BEGIN GENERATED: longtrain config-reference -->\n";

TEST(ConfigReference, TheUserGuideHoldsTheSchemasReference) {
  const std::string path = std::string(LT_SOURCE_DIR) + "/docs/user-guide.md";
  std::ifstream in(path);
  ASSERT_TRUE(in) << "cannot read " << path;
  std::stringstream text;
  text << in.rdbuf();
  const std::string guide = text.str();
  const auto at = guide.find(kMarker);
  ASSERT_NE(at, std::string::npos) << path << " has no line " << kMarker;
  EXPECT_EQ(guide.substr(at + kMarker.size()), config_reference_markdown())
      << path << " is out of date; regenerate it with\n"
      << "  sed -i '/^<!-- BEGIN GENERATED: longtrain config-reference -->$/q' docs/user-guide.md"
      << " && build/longtrain config-reference >> docs/user-guide.md";
}

}  // namespace
}  // namespace lt
