#include <yaml-cpp/yaml.h>

#include <sstream>

#include "trainer/config.h"
#include "trainer/config_schema.h"

namespace lt {

std::string config_to_yaml(const Config& config) {
  Config copy = config;
  YAML::Node root(YAML::NodeType::Map);
  for (const schema::KeySpec& spec : schema::keys()) {
    // The model's shape is written out key by key, so the document stands on its own.
    if (spec.path == "model.hf_config") continue;
    const std::string text = schema::current_text(spec, copy);
    const bool is_string = std::holds_alternative<schema::FieldRef<std::string>>(spec.field);
    YAML::Node value = is_string ? YAML::Node(text) : YAML::Load(text);
    std::vector<std::string> parts;
    std::stringstream path(spec.path);
    for (std::string part; std::getline(path, part, '.');) parts.push_back(part);
    YAML::Node node = root;
    // reset() rebinds the handle; assignment would overwrite the node it refers to.
    for (std::size_t i = 0; i + 1 < parts.size(); ++i) node.reset(node[parts[i]]);
    node[parts.back()] = value;
  }
  YAML::Emitter out;
  out << root;
  return std::string(out.c_str()) + "\n";
}

}  // namespace lt
