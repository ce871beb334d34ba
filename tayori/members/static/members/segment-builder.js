/* Tayori segment builder.
 *
 * Edits a condition tree — AND/OR groups of field / operator / value rows — and keeps it as JSON
 * in the form's hidden "definition" input, so operators never write JSON. What each field offers
 * (operators, value shape, choices) comes from the page's "segment-catalog" data; the server
 * validates, counts and saves. After every change the body receives a "segment-changed" event,
 * which makes htmx refresh the live count.
 *
 * Problems are shown on the row or group they concern: those found when saving stay with their
 * condition until it is edited; those the live count finds are replaced by each new count. The
 * live count leaves out rows still waiting for a value, so a row just added is not an error.
 *
 * Fields of kinds other apps register (a mail's responses) come with their own group and data in
 * the catalog's "kinds"; a "response" value is picked as a mail (or any mail), for a click a link
 * of that mail (looked up from the kind's "options" URL), and optionally "within the last N days".
 */
(function () {
  "use strict";

  var CHOICE_KINDS = ["choice", "multi_choice", "status"];
  var DATE_KINDS = ["date", "datetime", "created_at"];
  var MEMBER_FIELDS = ["email", "phone", "status", "created_at", "list", "segment"];
  var MAX_GROUP_DEPTH = 4;

  function readData(id) {
    var node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      var value = attrs[key];
      if (value === undefined || value === null || value === false) return;
      if (key === "text") node.textContent = value;
      else if (key === "className") node.className = value;
      else if (key.indexOf("on") === 0) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    });
    (children || []).forEach(function (child) {
      if (child) node.appendChild(child);
    });
    return node;
  }

  function Builder(root) {
    this.root = root;
    this.output = document.getElementById(root.dataset.output);
    this.live = document.getElementById(root.dataset.live);
    this.mirror = document.getElementById("segment-mirror");
    this.catalog = readData("segment-catalog");
    this.text = readData("segment-text");
    var self = this;
    var saved = {};
    (readData("segment-errors") || []).forEach(function (error) {
      (saved[error.where] = saved[error.where] || []).push(error.message);
    });
    this.savedErrors = new WeakMap();  // condition or group -> messages from the last save
    this.liveErrors = {};  // "1.2" -> messages from the last live count
    this.fields = {};
    this.catalog.fields.forEach(function (field) {
      self.fields[field.name] = field;
    });
    this.kinds = this.catalog.kinds || {};
    this.linkCache = {};  // mail id -> its links, or the callbacks waiting for them
    this.tree = this.group(readData("segment-definition"));
    this.attachSaved(this.tree, [], saved);
  }

  // Errors from saving name positions; tie them to the conditions themselves, so that they
  // follow a row when another one is removed above it.
  Builder.prototype.attachSaved = function (group, path, saved) {
    var self = this;
    if (path.length && saved[path.join(".")]) this.savedErrors.set(group, saved[path.join(".")]);
    group.conditions.forEach(function (child, index) {
      var childPath = path.concat([index + 1]);
      if (Array.isArray(child.conditions)) self.attachSaved(child, childPath, saved);
      else if (saved[childPath.join(".")]) self.savedErrors.set(child, saved[childPath.join(".")]);
    });
  };

  Builder.prototype.group = function (node) {
    var self = this;
    if (!node || typeof node !== "object" || !Array.isArray(node.conditions)) {
      return { op: "and", conditions: [] };
    }
    return {
      op: node.op === "or" ? "or" : "and",
      conditions: node.conditions.map(function (child) {
        if (child && typeof child === "object" && Array.isArray(child.conditions)) {
          return self.group(child);
        }
        return Object.assign({}, child);
      }),
    };
  };

  // ---- what a field and an operator expect ---------------------------------------------------

  Builder.prototype.operator = function (field, code) {
    return field.operators.filter(function (op) { return op.code === code; })[0];
  };

  Builder.prototype.available = function (field) {
    if (field.kind === "list") return this.catalog.lists.length > 0;
    if (field.kind === "segment") return this.catalog.segments.length > 0;
    return true;  // a registered kind offers "any" of what it picks
  };

  Builder.prototype.references = function (field) {
    return field.kind === "list" ? this.catalog.lists : this.catalog.segments;
  };

  Builder.prototype.emptyValue = function (field, shape) {
    if (shape === "none") return undefined;
    if (shape === "pair") return ["", ""];
    if (shape === "many") return [];
    if (shape === "days") return "7";
    if (shape === "response") return {};
    if (shape === "ref") {
      var refs = this.references(field);
      return refs.length ? refs[0].id : "";
    }
    if (CHOICE_KINDS.indexOf(field.kind) >= 0) return field.choices[0] || "";
    return "";
  };

  Builder.prototype.newCondition = function () {
    var fields = this.catalog.fields.filter(function (field) { return this.available(field); }, this);
    // Start on the first attribute that is not personal information (segments are usually
    // about attributes, and a name or an address is rarely what one picks members by), else
    // on the member's status.
    var attribute = fields.filter(function (field) {
      return MEMBER_FIELDS.indexOf(field.name) < 0 && !field.pii && !this.kinds[field.kind];
    }, this)[0];
    var name = attribute ? attribute.name : this.fields.status ? "status" : fields[0].name;
    var field = this.fields[name];
    var op = field.operators[0];
    return { field: name, operator: op.code, value: this.emptyValue(field, op.shape) };
  };

  // ---- output --------------------------------------------------------------------------------

  Builder.prototype.serialize = function (node) {
    var self = this;
    if (Array.isArray(node.conditions)) {
      return { op: node.op, conditions: node.conditions.map(function (c) { return self.serialize(c); }) };
    }
    var leaf = { field: node.field, operator: node.operator };
    if (node.value !== undefined) leaf.value = node.value;
    return leaf;
  };

  Builder.prototype.changed = function (quiet) {
    this.output.value = JSON.stringify(this.serialize(this.tree));
    if (!quiet) document.body.dispatchEvent(new CustomEvent("segment-changed"));
  };

  // A value typed into a row: the error saving found there no longer applies.
  Builder.prototype.edited = function (node) {
    if (this.savedErrors.delete(node)) this.paintErrors();
    this.changed();
  };

  Builder.prototype.rebuild = function (node) {
    if (node) this.savedErrors.delete(node);
    this.liveErrors = {};  // their positions may have moved; the next count brings fresh ones
    this.render();
    this.changed();
  };

  // ---- the live count's answer ---------------------------------------------------------------

  Builder.prototype.counted = function () {
    var self = this;
    var data = this.live.querySelector("#segment-live-errors");
    this.liveErrors = {};
    (data ? JSON.parse(data.textContent) : []).forEach(function (error) {
      (self.liveErrors[error.where] = self.liveErrors[error.where] || []).push(error.message);
    });
    this.paintErrors();
    if (this.mirror) {
      var count = this.live.querySelector("[data-count]");
      this.mirror.querySelector("strong").textContent = count ? count.textContent : "—";
      this.mirror.hidden = false;
    }
  };

  // ---- rendering -----------------------------------------------------------------------------

  Builder.prototype.render = function () {
    var focusPath = document.activeElement && document.activeElement.dataset
      ? document.activeElement.dataset.focus : null;
    // Problems with the definition as a whole are listed above the builder by the page.
    this.root.replaceChildren(this.renderGroup(this.tree, null, []));
    this.paintErrors();
    if (focusPath) {
      var again = this.root.querySelector('[data-focus="' + focusPath + '"]');
      if (again) again.focus();
    }
  };

  // Put each row's and group's current problems under it, without rebuilding the inputs (the
  // operator may be typing in one).
  Builder.prototype.paintErrors = function () {
    var self = this;
    this.root.querySelectorAll("[data-path]").forEach(function (box) {
      var messages = (self.savedErrors.get(box.segNode) || []).slice();
      (self.liveErrors[box.dataset.path] || []).forEach(function (m) {
        if (messages.indexOf(m) < 0) messages.push(m);
      });
      Array.prototype.slice.call(box.children).forEach(function (child) {
        if (child.matches("small.error")) child.remove();
      });
      messages.forEach(function (m) { box.appendChild(el("small", { className: "error", text: m })); });
      box.classList.toggle("has-error", messages.length > 0);
    });
  };

  Builder.prototype.renderGroup = function (group, parent, path) {
    var self = this;
    var key = path.join(".") || "root";
    var join = el("select", {
      "aria-label": this.text.join, "data-focus": "join-" + key,
      onchange: function () { group.op = this.value; self.rebuild(); },
    }, [
      el("option", { value: "and", text: this.text.all, selected: group.op === "and" }),
      el("option", { value: "or", text: this.text.any, selected: group.op === "or" }),
    ]);
    var head = el("div", { className: "seg-head" }, [join]);
    if (parent) {
      head.appendChild(el("button", {
        type: "button", className: "link", text: "✕ " + this.text.removeGroup,
        onclick: function () {
          parent.conditions.splice(parent.conditions.indexOf(group), 1);
          self.rebuild();
        },
      }));
    }
    var body = el("div", { className: "seg-body" });
    group.conditions.forEach(function (child, index) {
      var childPath = path.concat([index + 1]);
      if (index > 0) {
        body.appendChild(el("div", { className: "seg-join", text: group.op === "or" ? "OR" : "AND" }));
      }
      body.appendChild(Array.isArray(child.conditions)
        ? self.renderGroup(child, group, childPath)
        : self.renderRow(child, group, childPath));
    });
    if (!parent && !group.conditions.length) {
      body.appendChild(el("p", { className: "muted", text: this.text.empty }));
    }
    var actions = el("div", { className: "seg-actions" }, [
      el("button", {
        type: "button", text: "+ " + this.text.addCondition, "data-focus": "add-" + key,
        onclick: function () { group.conditions.push(self.newCondition()); self.rebuild(group); },
      }),
      path.length < MAX_GROUP_DEPTH ? el("button", {
        type: "button", text: "+ " + this.text.addGroup,
        onclick: function () {
          group.conditions.push({ op: group.op === "and" ? "or" : "and", conditions: [self.newCondition()] });
          self.rebuild(group);
        },
      }) : null,
    ]);
    var box = el("fieldset", { className: "seg-group" }, [head, body, actions]);
    if (path.length) {
      box.dataset.path = path.join(".");
      box.segNode = group;
    }
    return box;
  };

  Builder.prototype.renderRow = function (leaf, group, path) {
    var self = this;
    var key = path.join(".");
    var remove = el("button", {
      type: "button", className: "link", title: this.text.removeCondition,
      "aria-label": this.text.removeCondition, text: "✕",
      onclick: function () {
        group.conditions.splice(group.conditions.indexOf(leaf), 1);
        self.rebuild();
      },
    });
    var field = this.fields[leaf.field];
    var row = el("div", { className: "seg-row", "data-path": key });
    row.segNode = leaf;
    if (!field) {
      // A field this viewer may not use, or one deleted since: keep the condition as it is so
      // that saving reports it instead of silently dropping it.
      row.appendChild(el("span", { text: this.text.unknownField.replace("%(field)s", leaf.field) }));
      row.appendChild(remove);
      return row;
    }
    row.appendChild(this.fieldSelect(leaf, key));
    var opSelect = el("select", {
      "aria-label": this.text.operator, "data-focus": "op-" + key,
      onchange: function () {
        var before = self.operator(field, leaf.operator);
        var after = self.operator(field, this.value);
        leaf.operator = this.value;
        if (!before || before.shape !== after.shape) leaf.value = self.emptyValue(field, after.shape);
        self.rebuild(leaf);
      },
    }, field.operators.map(function (op) {
      return el("option", { value: op.code, text: op.label, selected: op.code === leaf.operator });
    }));
    row.appendChild(opSelect);
    var op = this.operator(field, leaf.operator);
    if (op) this.valueInputs(leaf, field, op.shape, key).forEach(function (n) { row.appendChild(n); });
    row.appendChild(remove);
    return row;
  };

  Builder.prototype.fieldSelect = function (leaf, key) {
    var self = this;
    var member = el("optgroup", { label: this.text.member });
    var attributes = el("optgroup", { label: this.text.attributes });
    var kinds = {};
    this.catalog.fields.forEach(function (field) {
      var name = field.name;
      if (!self.available(field) && name !== leaf.field) return;
      var option = el("option", { value: name, text: field.label, selected: name === leaf.field });
      var kind = self.kinds[field.kind];
      if (kind) {
        kinds[field.kind] = kinds[field.kind] || el("optgroup", { label: kind.group });
        kinds[field.kind].appendChild(option);
      } else {
        (MEMBER_FIELDS.indexOf(name) >= 0 ? member : attributes).appendChild(option);
      }
    });
    var groups = [member].concat(Object.keys(kinds).map(function (k) { return kinds[k]; }));
    if (attributes.children.length) groups.push(attributes);
    return el("select", {
      "aria-label": this.text.field, "data-focus": "field-" + key,
      onchange: function () {
        var field = self.fields[this.value];
        var op = field.operators[0];
        leaf.field = this.value;
        leaf.operator = op.code;
        leaf.value = self.emptyValue(field, op.shape);
        self.rebuild(leaf);
      },
    }, groups);
  };

  Builder.prototype.valueInputs = function (leaf, field, shape, key) {
    var self = this;
    var label = this.text.value;
    if (shape === "none") return [];
    if (shape === "response") return this.responseInputs(leaf, field, key);
    if (shape === "days") {
      return [
        el("input", {
          type: "number", min: "0", max: "36500", step: "1", value: leaf.value, "aria-label": label,
          "data-focus": "days-" + key, style: "width: 90px",
          oninput: function () { leaf.value = this.value; self.edited(leaf); },
        }),
        el("span", { className: "seg-join", text: this.text.days }),
      ];
    }
    if (shape === "ref") {
      return [el("select", {
        "aria-label": label, "data-focus": "ref-" + key,
        onchange: function () { leaf.value = parseInt(this.value, 10) || this.value; self.edited(leaf); },
      }, [el("option", { value: "", text: this.text.choose })].concat(
        this.references(field).map(function (ref) {
          return el("option", { value: ref.id, text: ref.name, selected: String(ref.id) === String(leaf.value) });
        })))];
    }
    if (shape === "many") {
      if (CHOICE_KINDS.indexOf(field.kind) >= 0) {
        var chosen = Array.isArray(leaf.value) ? leaf.value : [];
        return [el("div", { className: "seg-choices", role: "group", "aria-label": label },
          field.choices.map(function (choice, i) {
            return el("label", {}, [
              el("input", {
                type: "checkbox", value: choice, checked: chosen.indexOf(choice) >= 0,
                "data-focus": "many-" + key + "-" + i,
                onchange: function () {
                  var boxes = this.closest(".seg-choices").querySelectorAll("input");
                  leaf.value = Array.prototype.filter.call(boxes, function (b) { return b.checked; })
                    .map(function (b) { return b.value; });
                  self.edited(leaf);
                },
              }),
              document.createTextNode(field.choice_labels[i] || choice),
            ]);
          }))];
      }
      return [el("textarea", {
        rows: "3", placeholder: this.text.onePerLine, "aria-label": label, "data-focus": "many-" + key,
        text: (Array.isArray(leaf.value) ? leaf.value : []).join("\n"),
        oninput: function () {
          leaf.value = this.value.split("\n").map(function (s) { return s.trim(); })
            .filter(function (s) { return s; });
          self.edited(leaf);
        },
      })];
    }
    if (shape === "pair") {
      var pair = Array.isArray(leaf.value) ? leaf.value : ["", ""];
      leaf.value = pair;
      return [
        this.single(field, pair[0], function (v) { pair[0] = v; self.edited(leaf); }, key + "-0"),
        el("span", { className: "seg-join", text: this.text.and }),
        this.single(field, pair[1], function (v) { pair[1] = v; self.edited(leaf); }, key + "-1"),
      ];
    }
    return [this.single(field, leaf.value, function (v) { leaf.value = v; self.edited(leaf); }, key)];
  };

  // A mail (or any mail), for a click a link of it (or any link), and "within the last N days"
  // (empty: at any time). Keys left out of the value mean "any".
  Builder.prototype.responseInputs = function (leaf, field, key) {
    var self = this;
    var kind = this.kinds[field.kind];
    var words = kind.text;
    var value = leaf.value && typeof leaf.value === "object" && !Array.isArray(leaf.value) ? leaf.value : {};
    leaf.value = value;
    var mails = kind.mails.slice();
    if (value.source !== undefined && !mails.some(function (m) { return String(m.id) === String(value.source); })) {
      mails.push({ id: value.source, name: "#" + value.source });  // older than the listed ones
    }
    var nodes = [el("select", {
      "aria-label": words.mail, "data-focus": "mail-" + key,
      onchange: function () {
        if (this.value) value.source = parseInt(this.value, 10);
        else delete value.source;
        delete value.link;
        self.rebuild(leaf);  // the link picker follows the mail
      },
    }, [el("option", { value: "", text: words.anyMail })].concat(mails.map(function (m) {
      return el("option", { value: m.id, text: m.name, selected: String(m.id) === String(value.source) });
    })))];
    if (kind.linkOperators.indexOf(leaf.operator) < 0) delete value.link;
    else if (value.source !== undefined) nodes.push(this.linkSelect(kind, value, leaf, key));
    nodes.push(el("span", { className: "seg-join", text: words.withinLast }));
    nodes.push(el("input", {
      type: "number", min: "0", max: "36500", step: "1", placeholder: words.anyTime,
      value: value.days === undefined ? "" : value.days, "aria-label": words.withinLast,
      "data-focus": "days-" + key, style: "width: 90px",
      oninput: function () {
        if (this.value === "") delete value.days;
        else value.days = this.value;
        self.edited(leaf);
      },
    }));
    nodes.push(el("span", { className: "seg-join", text: words.days }));
    return nodes;
  };

  Builder.prototype.linkSelect = function (kind, value, leaf, key) {
    var self = this;
    var select = el("select", {
      "aria-label": kind.text.link, "data-focus": "link-" + key,
      onchange: function () {
        if (this.value === "") delete value.link;
        else value.link = parseInt(this.value, 10);
        self.edited(leaf);
      },
    }, [el("option", { value: "", text: kind.text.anyLink })]);
    if (value.link !== undefined) {
      select.appendChild(el("option", { value: value.link, text: "#" + (value.link + 1), selected: true }));
    }
    this.links(kind, value.source, function (links) {
      select.replaceChildren(el("option", { value: "", text: kind.text.anyLink }));
      links.forEach(function (link) {
        select.appendChild(el("option", {
          value: link.index, text: (link.index + 1) + ". " + link.label, selected: link.index === value.link,
        }));
      });
    });
    return select;
  };

  // The links of one mail, asked for once and shared by every row that shows them.
  Builder.prototype.links = function (kind, source, done) {
    var cached = this.linkCache[source];
    if (Array.isArray(cached)) return done(cached);
    if (cached) return cached.push(done);
    var waiting = this.linkCache[source] = [done];
    var self = this;
    fetch(kind.options + "&source=" + encodeURIComponent(source), { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : { links: [] }; })
      .catch(function () { return { links: [] }; })
      .then(function (data) {
        self.linkCache[source] = data.links || [];
        waiting.forEach(function (callback) { callback(self.linkCache[source]); });
      });
  };

  Builder.prototype.single = function (field, value, set, key) {
    var label = this.text.value;
    if (CHOICE_KINDS.indexOf(field.kind) >= 0) {
      return el("select", {
        "aria-label": label, "data-focus": "value-" + key,
        onchange: function () { set(this.value); },
      }, field.choices.map(function (choice, i) {
        return el("option", { value: choice, text: field.choice_labels[i] || choice, selected: choice === value });
      }));
    }
    var type = field.kind === "number" ? "number" : DATE_KINDS.indexOf(field.kind) >= 0 ? "date" : "text";
    return el("input", {
      type: type, step: type === "number" ? "any" : null, value: value === undefined ? "" : value,
      "aria-label": label, "data-focus": "value-" + key,
      oninput: function () { set(this.value); },
    });
  };

  function start() {
    var root = document.getElementById("segment-builder");
    if (!root) return;
    var builder = new Builder(root);
    builder.render();
    builder.changed(true);
    if (builder.live) {
      document.body.addEventListener("htmx:afterSwap", function (event) {
        if (event.detail.target === builder.live) builder.counted();
      });
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
